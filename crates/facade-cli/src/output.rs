//! Scan records and their three renderings: JSON Lines, CSV and a terminal table.

use std::io::Write;

pub use facade_detect::record::{Record, Status, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Table,
}

/// Writes records one at a time in the chosen format.
pub struct RecordWriter<W: Write> {
    format: Format,
    out: W,
    wrote_header: bool,
}

const CSV_HEADER: &[&str] = &[
    "path",
    "status",
    "width",
    "height",
    "faces",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "left_eye_x",
    "left_eye_y",
    "right_eye_x",
    "right_eye_y",
    "nose_x",
    "nose_y",
    "mouth_left_x",
    "mouth_left_y",
    "mouth_right_x",
    "mouth_right_y",
    "error",
    "score",
    "verdict",
    "geometry",
    "embedding",
    "classifier",
    "sha256",
    "warnings",
    "verdict_source",
    "provenance_source",
    "provenance_generator",
    "provenance_ai",
    // Last, so that the columns before it keep their places: models with a coarse branch
    // only (empty otherwise).
    "coarse",
];

/// Where `--output` sends records: the file, or stdout.
pub type Sink = std::io::BufWriter<Box<dyn Write>>;

impl RecordWriter<Sink> {
    /// A writer to `output` (stdout when none) in `format`, by default a table on a terminal
    /// and JSON Lines anywhere else.
    pub fn to(format: Option<Format>, output: Option<&std::path::Path>) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::io::IsTerminal;
        let to_terminal = output.is_none() && std::io::stdout().is_terminal();
        let format = format.unwrap_or(if to_terminal {
            Format::Table
        } else {
            Format::Jsonl
        });
        let sink: Box<dyn Write> = match output {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout().lock()),
        };
        Ok(RecordWriter::new(format, std::io::BufWriter::new(sink)))
    }
}

impl<W: Write> RecordWriter<W> {
    pub fn new(format: Format, out: W) -> Self {
        RecordWriter {
            format,
            out,
            wrote_header: false,
        }
    }

    pub fn write(&mut self, record: &Record) -> std::io::Result<()> {
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")
            }
            Format::Csv => self.write_csv(record),
            Format::Table => self.write_table(record),
        }
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// One row per image, describing its most confident face.
    fn write_csv(&mut self, record: &Record) -> std::io::Result<()> {
        let mut row: Vec<String> = vec![
            record.path.clone(),
            record.status.as_str().into(),
            record.width.map(|v| v.to_string()).unwrap_or_default(),
            record.height.map(|v| v.to_string()).unwrap_or_default(),
            record.faces.len().to_string(),
        ];
        match record.faces.first() {
            Some(face) => {
                row.push(face.confidence.to_string());
                row.extend(face.bbox.iter().map(|v| v.to_string()));
                row.extend(face.landmarks.iter().flatten().map(|v| v.to_string()));
            }
            None => row.extend(std::iter::repeat_n(String::new(), 15)),
        }
        row.push(record.error.clone().unwrap_or_default());
        row.push(record.score.map(|v| v.to_string()).unwrap_or_default());
        row.push(
            record
                .verdict
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        );
        // The detectors' raw values for the most suspicious face.
        let suspect = record
            .faces
            .iter()
            .filter(|f| f.score.is_some())
            .max_by(|a, b| a.score.unwrap_or(0.0).total_cmp(&b.score.unwrap_or(0.0)));
        let detector_value = |detector: &str| {
            suspect
                .and_then(|f| f.evidence.as_ref())
                .and_then(|e| e.get(detector))
                .map(|e| e.value.to_string())
                .unwrap_or_default()
        };
        for detector in ["geometry", "embedding", "classifier"] {
            row.push(detector_value(detector));
        }
        row.push(record.sha256.clone().unwrap_or_default());
        row.push(record.warnings.join("; "));
        row.push(
            record
                .verdict_source
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        );
        let provenance = record.provenance.as_ref();
        row.push(
            provenance
                .map(|p| p.source.as_str().to_owned())
                .unwrap_or_default(),
        );
        row.push(
            provenance
                .and_then(|p| p.generator.clone())
                .unwrap_or_default(),
        );
        let declared_ai = provenance.and_then(|p| p.ai_generated);
        row.push(declared_ai.map(|ai| ai.to_string()).unwrap_or_default());
        row.push(detector_value("coarse"));
        let mut csv = csv::WriterBuilder::new().from_writer(Vec::new());
        if !self.wrote_header {
            csv.write_record(CSV_HEADER)?;
            self.wrote_header = true;
        }
        csv.write_record(&row)?;
        let bytes = csv.into_inner().map_err(|e| e.into_error())?;
        self.out.write_all(&bytes)
    }

    fn write_table(&mut self, record: &Record) -> std::io::Result<()> {
        if !self.wrote_header {
            writeln!(
                self.out,
                "{:<8} {:>5} {:>7} {:>11} {:>7} {:<7}  PATH",
                "STATUS", "FACES", "CONF", "SIZE", "SCORE", "VERDICT"
            )?;
            self.wrote_header = true;
        }
        let size = match (record.width, record.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        };
        let conf = record
            .faces
            .first()
            .map(|f| format!("{:.3}", f.confidence))
            .unwrap_or_else(|| "-".into());
        let score = record
            .score
            .map(|s| format!("{s:.3}"))
            .unwrap_or_else(|| "-".into());
        let verdict = record.verdict.map_or("-", Verdict::as_str);
        write!(
            self.out,
            "{:<8} {:>5} {:>7} {:>11} {:>7} {:<7}  {}",
            record.status.as_str(),
            record.faces.len(),
            conf,
            size,
            score,
            verdict,
            record.path
        )?;
        let mut notes: Vec<String> = record.error.iter().cloned().collect();
        if record.error.is_none() {
            notes.extend(record.warnings.iter().cloned());
        }
        if let Some(p) = &record.provenance {
            notes.push(format!("declared by the file: {}", p.summary()));
        }
        match notes.is_empty() {
            true => writeln!(self.out),
            false => writeln!(self.out, "  ({})", notes.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facade_detect::record::FaceRecord;
    use facade_face::Face;

    fn sample() -> Record {
        Record {
            path: "a, b.jpg".into(),
            status: Status::Ok,
            sha256: None,
            width: Some(10),
            height: Some(20),
            faces: vec![FaceRecord::from(&Face {
                bbox: [1.234567, 2.0, 3.0, 4.0],
                confidence: 0.9999912,
                landmarks: [[1.0, 1.0]; 5],
            })],
            score: None,
            verdict: None,
            verdict_source: None,
            provenance: None,
            warnings: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn jsonl_has_the_documented_fields() {
        let mut w = RecordWriter::new(Format::Jsonl, Vec::new());
        w.write(&sample()).unwrap();
        w.write(&Record::failed("x".into(), "empty file".into()))
            .unwrap();
        let text = String::from_utf8(w.out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["status"], "ok");
        assert_eq!(lines[0]["faces"][0]["box"][0], 1.23);
        assert_eq!(lines[0]["faces"][0]["confidence"], 0.99999);
        assert_eq!(lines[1]["status"], "error");
        assert_eq!(lines[1]["error"], "empty file");
        assert!(lines[1].get("width").is_none());
    }

    #[test]
    fn csv_quotes_and_keeps_one_header() {
        let mut w = RecordWriter::new(Format::Csv, Vec::new());
        w.write(&sample()).unwrap();
        w.write(&Record::failed("y".into(), "bad".into())).unwrap();
        let text = String::from_utf8(w.out).unwrap();
        let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][0], "a, b.jpg");
        assert_eq!(rows[0].len(), CSV_HEADER.len());
        assert_eq!(&rows[1][1], "error");
        assert_eq!(&rows[1][20], "bad");
    }
}
