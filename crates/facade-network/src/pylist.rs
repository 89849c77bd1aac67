//! List columns of the Twitter archive, written as Python literals: `['a', "b's"]`.

/// The items of a Python list literal of strings. An empty field or `[]` is an empty list; a
/// field that is not a list literal is split on commas and whitespace (some re-exports flatten
/// lists that way). `None` when the literal is malformed (unterminated string or bracket).
pub fn parse_list(field: &str) -> Option<Vec<String>> {
    let field = field.trim();
    if field.is_empty() || field == "[]" || field == "None" {
        return Some(Vec::new());
    }
    let Some(inner) = field.strip_prefix('[') else {
        return Some(
            field
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    };
    let inner = inner.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else {
            return Some(items);
        };
        if quote != '\'' && quote != '"' {
            // An unquoted item (a number): up to the next comma.
            let mut item = String::from(quote);
            while let Some(c) = chars.next_if(|c| *c != ',') {
                item.push(c);
            }
            items.push(item.trim().to_owned());
            continue;
        }
        items.push(read_quoted(&mut chars, quote)?);
    }
}

fn read_quoted(chars: &mut std::iter::Peekable<std::str::Chars>, quote: char) -> Option<String> {
    let mut item = String::new();
    loop {
        match chars.next()? {
            '\\' => match chars.next()? {
                'n' => item.push('\n'),
                't' => item.push('\t'),
                'r' => item.push('\r'),
                other => item.push(other),
            },
            c if c == quote => return Some(item),
            c => item.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_list;

    #[test]
    fn reads_python_literals() {
        assert_eq!(parse_list("['a', 'b']").unwrap(), ["a", "b"]);
        assert_eq!(parse_list(r#"["it's", 'x\'y']"#).unwrap(), ["it's", "x'y"]);
        assert_eq!(parse_list("[]").unwrap(), Vec::<String>::new());
        assert_eq!(parse_list("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_list("[123, 456]").unwrap(), ["123", "456"]);
        assert_eq!(parse_list("a b,c").unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn refuses_broken_literals() {
        assert_eq!(parse_list("['a'"), None);
        assert_eq!(parse_list("['unterminated]"), None);
    }
}
