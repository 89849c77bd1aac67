//! Box arithmetic of the MTCNN cascade: non-maximum suppression, regression, squaring.
//!
//! Two conventions coexist in the reference implementation and both are kept: the first stage
//! and torchvision's NMS measure a box as `x2 - x1`, the later stages and the final "Min" NMS
//! as `x2 - x1 + 1` (pixel-inclusive, from the original MATLAB code).

/// A candidate face: corners, score, and the regression the network proposed for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
    pub reg: [f32; 4],
}

/// How overlap is measured in [`nms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// torchvision `nms`: intersection over union, areas without the +1.
    Union,
    /// The reference's numpy "Min": intersection over the smaller area, areas with +1.
    Min,
}

/// Keeps the best-scoring boxes, dropping any whose overlap with a kept one exceeds
/// `threshold`. Returns the kept candidates in descending score order.
pub fn nms(boxes: Vec<Candidate>, threshold: f32, overlap: Overlap) -> Vec<Candidate> {
    let mut kept: Vec<Candidate> = Vec::new();
    for b in by_score(boxes) {
        if kept.iter().all(|k| overlap_of(&b, k, overlap) <= threshold) {
            kept.push(b);
        }
    }
    kept
}

/// How much `a` and `b` overlap, measured as `overlap` says.
fn overlap_of(a: &Candidate, b: &Candidate, overlap: Overlap) -> f32 {
    let plus = if overlap == Overlap::Min { 1.0 } else { 0.0 };
    let area = |c: &Candidate| (c.x2 - c.x1 + plus) * (c.y2 - c.y1 + plus);
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1) + plus).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1) + plus).max(0.0);
    let inter = w * h;
    match overlap {
        Overlap::Union => inter / (area(a) + area(b) - inter),
        Overlap::Min => inter / area(a).min(area(b)),
    }
}

/// The boxes O-Net should look at, place by place (the most confident place first), each
/// place's looks most confident first: at most `looks` boxes at each of at most `places`
/// separate places (a box belongs to the place of the first taken box it overlaps by more
/// than [`SEPARATE`] IoU). O-Net sometimes rejects the best box of a face and accepts a
/// slightly different one, hence more than one look per place.
pub fn places_and_looks(boxes: Vec<Candidate>, places: usize, looks: usize) -> Vec<Vec<Candidate>> {
    let mut taken: Vec<Vec<Candidate>> = Vec::new();
    if looks == 0 {
        return taken;
    }
    for b in by_score(boxes) {
        let same_place =
            |place: &Vec<Candidate>| overlap_of(&b, &place[0], Overlap::Union) > SEPARATE;
        match taken.iter().position(same_place) {
            Some(place) if taken[place].len() < looks => taken[place].push(b),
            Some(_) => {}
            None if taken.len() < places => taken.push(vec![b]),
            None => {}
        }
    }
    taken
}

/// Every place's looks in one list, most confident first (O-Net reading every look).
pub fn every_look(places: Vec<Vec<Candidate>>) -> Vec<Candidate> {
    by_score(places.concat())
}

/// Overlap (IoU) above which two boxes are taken to be the same face in [`places_and_looks`].
pub const SEPARATE: f32 = 0.3;

fn by_score(mut boxes: Vec<Candidate>) -> Vec<Candidate> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    boxes
}

/// Applies the regression proposed by P-Net (box size measured without +1).
pub fn regress_first_stage(b: &Candidate) -> Candidate {
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    shifted(b, w, h)
}

/// Applies the regression proposed by R-Net or O-Net (box size measured with +1).
pub fn regress(b: &Candidate) -> Candidate {
    let (w, h) = (b.x2 - b.x1 + 1.0, b.y2 - b.y1 + 1.0);
    shifted(b, w, h)
}

fn shifted(b: &Candidate, w: f32, h: f32) -> Candidate {
    Candidate {
        x1: b.x1 + b.reg[0] * w,
        y1: b.y1 + b.reg[1] * h,
        x2: b.x2 + b.reg[2] * w,
        y2: b.y2 + b.reg[3] * h,
        ..*b
    }
}

/// Turns a box into the square of its longer side around the same centre.
pub fn square(b: &Candidate) -> Candidate {
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    let side = w.max(h);
    let x1 = b.x1 + w * 0.5 - side * 0.5;
    let y1 = b.y1 + h * 0.5 - side * 0.5;
    Candidate {
        x1,
        y1,
        x2: x1 + side,
        y2: y1 + side,
        ..*b
    }
}

/// The integer pixel window the reference crops for a box: columns `trunc(x1) - 1 ..=
/// trunc(x2) - 1` (its 1-based MATLAB heritage). Returns `(x0, y0, width, height)`, or `None`
/// for an empty window. Unlike the reference, the window is *not* clamped to the image: the
/// caller fills what lies outside.
pub fn crop_window(b: &Candidate) -> Option<(i64, i64, usize, usize)> {
    let (x1, y1) = (b.x1.trunc() as i64, b.y1.trunc() as i64);
    let (x2, y2) = (b.x2.trunc() as i64, b.y2.trunc() as i64);
    let (w, h) = (x2 - x1 + 1, y2 - y1 + 1);
    if w <= 0 || h <= 0 || !b.x1.is_finite() || !b.y1.is_finite() {
        return None;
    }
    Some((x1 - 1, y1 - 1, w as usize, h as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Candidate {
        Candidate {
            x1,
            y1,
            x2,
            y2,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_drops_overlapping_lower_scores() {
        let kept = nms(
            vec![
                cand(0., 0., 10., 10., 0.8),
                cand(1., 1., 11., 11., 0.9),
                cand(50., 50., 60., 60., 0.7),
            ],
            0.5,
            Overlap::Union,
        );
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
    }

    #[test]
    fn min_overlap_suppresses_nested_boxes() {
        let outer = cand(0., 0., 99., 99., 0.9);
        let inner = cand(10., 10., 29., 29., 0.8);
        // IoU is small (400/10000) but the inner box is entirely covered.
        assert_eq!(nms(vec![outer, inner], 0.7, Overlap::Union).len(), 2);
        assert_eq!(nms(vec![outer, inner], 0.7, Overlap::Min).len(), 1);
    }

    #[test]
    fn looks_are_shared_out_by_place() {
        let face = cand(0., 0., 10., 10., 0.99);
        let second_look = cand(1., 1., 11., 11., 0.98);
        let third_look = cand(0., 1., 10., 11., 0.97);
        let other_face = cand(50., 50., 60., 60., 0.8);
        let third_place = cand(100., 0., 110., 10., 0.7);
        let all = vec![third_look, other_face, face, third_place, second_look];
        let looks_at_places =
            |boxes, places, looks| every_look(places_and_looks(boxes, places, looks));
        assert_eq!(
            looks_at_places(all.clone(), 2, 2),
            vec![face, second_look, other_face]
        );
        assert_eq!(
            looks_at_places(all.clone(), 3, 1),
            vec![face, other_face, third_place]
        );
        assert_eq!(looks_at_places(all.clone(), 5, 5), by_score(all.clone()));
        assert_eq!(looks_at_places(vec![face, second_look], 0, 3), vec![]);
        assert_eq!(
            places_and_looks(all.clone(), 2, 2),
            vec![vec![face, second_look], vec![other_face]]
        );
        assert_eq!(
            places_and_looks(all.clone(), 5, 5),
            vec![
                vec![face, second_look, third_look],
                vec![other_face],
                vec![third_place]
            ]
        );
        assert!(places_and_looks(all, 3, 0).is_empty());
    }

    #[test]
    fn square_keeps_centre() {
        let s = square(&cand(10., 20., 30., 60., 1.0));
        assert_eq!((s.x1, s.y1, s.x2, s.y2), (0., 20., 40., 60.));
    }

    #[test]
    fn regression_scales_with_box() {
        let mut c = cand(0., 0., 9., 9., 1.0);
        c.reg = [0.1, 0.0, -0.1, 0.5];
        let r = regress(&c);
        assert_eq!((r.x1, r.y1, r.x2, r.y2), (1.0, 0.0, 8.0, 14.0));
        let f = regress_first_stage(&c);
        assert!((f.x1 - 0.9).abs() < 1e-6);
    }

    #[test]
    fn crop_window_is_not_clamped() {
        assert_eq!(
            crop_window(&cand(-5.7, 3.2, 10.9, 20.0, 1.0)),
            Some((-6, 2, 16, 18))
        );
        assert_eq!(crop_window(&cand(10., 10., 5., 20., 1.0)), None);
        assert_eq!(crop_window(&cand(f32::NAN, 0., 5., 5., 1.0)), None);
    }
}
