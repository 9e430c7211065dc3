//! Content lines (RFC 5545 §3.1, RFC 6350 §3.2, vCard 2.1): unfolding,
//! each property's group, name, parameters and value, components nested by
//! BEGIN/END; and folding them back.
//!
//! Written here rather than taken from calcard, which the importer uses for
//! time zones: calcard reads values into typed forms and writes them back
//! its own way, while an import must carry every property it does not map
//! exactly as the file wrote it, and must refuse a malformed file naming its
//! line instead of reading past it (calcard follows Postel's law).

use std::fmt;

/// One property: `group.NAME;PARAM=a,b:value`, its text unfolded.
#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    /// The 1-based line of the file where it starts.
    pub line: usize,
    /// The property's unfolded text, exactly as written (without the line
    /// break).
    pub raw: String,
    pub group: Option<String>,
    /// Upper-cased.
    pub name: String,
    /// Names upper-cased; values as written, quotes removed.
    pub params: Vec<(String, Vec<String>)>,
    /// As written (escapes and encodings not undone).
    pub value: String,
}

impl Prop {
    /// The first value of the parameter `name` (upper-case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    /// Whether a parameter `name` holds `value` (case-insensitive), as
    /// `TYPE=work,pref` or `TYPE=pref` does for `pref`.
    pub fn has_param_value(&self, name: &str, value: &str) -> bool {
        self.params
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v)
            .flat_map(|v| v.split(','))
            .any(|v| v.eq_ignore_ascii_case(value))
    }
}

/// A component: `BEGIN:NAME` ... `END:NAME`, its properties and the
/// components nested in it, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Component {
    /// Upper-cased.
    pub name: String,
    /// The line of its `BEGIN`.
    pub line: usize,
    pub props: Vec<Prop>,
    pub children: Vec<Component>,
}

impl Component {
    /// The first property `name`.
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    /// The component's lines, `BEGIN` and `END` included, unfolded.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.push_lines(&mut out);
        out
    }

    fn push_lines(&self, out: &mut Vec<String>) {
        out.push(format!("BEGIN:{}", self.name));
        out.extend(self.props.iter().map(|p| p.raw.clone()));
        for c in &self.children {
            c.push_lines(out);
        }
        out.push(format!("END:{}", self.name));
    }
}

/// Why a text is not content lines, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

fn malformed(line: usize, what: impl Into<String>) -> Malformed {
    Malformed {
        line,
        what: what.into(),
    }
}

/// Physical lines joined into logical ones, each with the number of the
/// line it starts on: a line that begins with a space or tab continues the
/// one before (RFC 5545 §3.1); in vCard 2.1, a quoted-printable value ending
/// in `=` continues on the next line.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut soft_break = false;
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if soft_break && let Some(last) = out.last_mut() {
            // The soft break first: its next line is the value's own text,
            // a leading space included.
            last.1.pop(); // the `=` that broke the line
            last.1.push_str(line);
        } else if let Some(rest) = line.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push_str(rest);
        } else if !line.is_empty() {
            out.push((i + 1, line.to_string()));
        }
        soft_break = out.last().is_some_and(|(_, l)| {
            l.ends_with('=') && l.to_ascii_uppercase().contains("QUOTED-PRINTABLE")
        }) && !line.is_empty();
    }
    out
}

/// One logical line split into a property.
fn parse_prop(line: usize, raw: String) -> Result<Prop, Malformed> {
    // The name and parameters end at the first `:` outside double quotes.
    let mut in_quotes = false;
    let mut colon = None;
    for (i, c) in raw.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(colon) = colon else {
        return Err(malformed(
            line,
            format!(
                "`{}` is not a property (no `:` after its name)",
                short(&raw)
            ),
        ));
    };
    let (head, value) = (&raw[..colon], raw[colon + 1..].to_string());
    let mut parts = split_outside_quotes(head, ';').into_iter();
    let full = parts.next().unwrap_or_default();
    let (group, name) = match full.rsplit_once('.') {
        Some((g, n)) => (Some(g.to_string()), n),
        None => (None, full.as_str()),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(malformed(
            line,
            format!("`{}` is not a property name", short(&full)),
        ));
    }
    let mut params = Vec::new();
    for p in parts {
        let (pname, pvalue) = match p.split_once('=') {
            Some((n, v)) => (n.trim().to_ascii_uppercase(), v.to_string()),
            // vCard 2.1: `TEL;WORK;VOICE:` is `TYPE=WORK`, `TYPE=VOICE`.
            None => ("TYPE".to_string(), p.clone()),
        };
        let values = split_outside_quotes(&pvalue, ',')
            .into_iter()
            .map(|v| v.trim_matches('"').to_string())
            .collect();
        params.push((pname, values));
    }
    Ok(Prop {
        line,
        group,
        name: name.to_ascii_uppercase(),
        params,
        value,
        raw,
    })
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_quotes = false;
    for c in s.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c == sep && !in_quotes {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn short(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// Parses `text` into its top-level components (`VCARD`s, or one or more
/// `VCALENDAR`s).
pub fn parse(text: &str) -> Result<Vec<Component>, Malformed> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut top = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    for (line, raw) in unfold(text) {
        let prop = parse_prop(line, raw)?;
        match prop.name.as_str() {
            "BEGIN" => stack.push(Component {
                name: prop.value.trim().to_ascii_uppercase(),
                line,
                ..Component::default()
            }),
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let Some(done) = stack.pop() else {
                    return Err(malformed(line, format!("`END:{name}` without a `BEGIN`")));
                };
                if done.name != name {
                    return Err(malformed(
                        line,
                        format!(
                            "`END:{name}` closes `BEGIN:{}` of line {}",
                            done.name, done.line
                        ),
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => top.push(done),
                }
            }
            _ => match stack.last_mut() {
                Some(c) => c.props.push(prop),
                None => {
                    return Err(malformed(
                        line,
                        format!(
                            "property `{}` outside any `BEGIN`/`END` component",
                            prop.name
                        ),
                    ));
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(
            open.line,
            format!(
                "`BEGIN:{}` is never closed with `END:{}`",
                open.name, open.name
            ),
        ));
    }
    if top.is_empty() {
        return Err(malformed(1, "no `BEGIN:VCARD` or `BEGIN:VCALENDAR` in it"));
    }
    Ok(top)
}

/// Lines folded at 75 octets (never inside a character) and ended with
/// CRLF, as RFC 5545 and RFC 6350 ask. A quoted-printable value (vCard
/// 2.1) is not folded: a fold after one of its `=` would read as a soft
/// line break.
pub fn fold(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        let head = line.split(':').next().unwrap_or("");
        if head.to_ascii_uppercase().contains("QUOTED-PRINTABLE") {
            out.push_str(line);
            out.push_str("\r\n");
            continue;
        }
        let mut width = 0;
        for c in line.chars() {
            if width + c.len_utf8() > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(c);
            width += c.len_utf8();
        }
        out.push_str("\r\n");
    }
    out
}

/// A TEXT value unescaped (`\n`, `\,`, `\;`, `\\`).
pub fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A TEXT value escaped for a property.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Splits a value at unescaped `sep` (a structured or list value).
pub fn split_escaped(v: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in v.chars() {
        if escaped {
            if let Some(last) = out.last_mut() {
                last.push('\\');
                last.push(c);
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    if escaped && let Some(last) = out.last_mut() {
        last.push('\\');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_params_and_groups() {
        let text = "BEGIN:VCARD\r\nVERSION:4.0\r\nitem1.EMAIL;TYPE=work,pref;X-LABEL=\"a;b:c\":ann@x\r\n .org\r\nNOTE:one\\, two\\nthree\r\nEND:VCARD\r\n";
        let top = parse(text).unwrap();
        let card = &top[0];
        assert_eq!(card.name, "VCARD");
        let email = card.prop("EMAIL").unwrap();
        assert_eq!(email.group.as_deref(), Some("item1"));
        assert_eq!(email.value, "ann@x.org");
        assert_eq!(email.line, 3);
        assert!(email.has_param_value("TYPE", "pref"));
        assert_eq!(email.param("X-LABEL"), Some("a;b:c"));
        assert_eq!(
            unescape(&card.prop("NOTE").unwrap().value),
            "one, two\nthree"
        );
        assert_eq!(card.lines()[2], email.raw);
    }

    #[test]
    fn vcard_2_1_quoted_printable_continues() {
        let text = "BEGIN:VCARD\nVERSION:2.1\nNOTE;ENCODING=QUOTED-PRINTABLE:a=\nb\nTEL;WORK;VOICE:123\nEND:VCARD\n";
        let card = &parse(text).unwrap()[0];
        assert_eq!(card.prop("NOTE").unwrap().value, "ab");
        assert!(card.prop("TEL").unwrap().has_param_value("TYPE", "voice"));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let e = parse("BEGIN:VCARD\nFN:a\nthis is not a property\nEND:VCARD\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse("BEGIN:VCARD\nFN:a\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(parse("").is_err());
    }

    #[test]
    fn folding_never_splits_a_character() {
        let long = format!("NOTE:{}", "é".repeat(80));
        let folded = fold(std::slice::from_ref(&long));
        assert!(folded.split("\r\n").all(|l| l.len() <= 75));
        assert_eq!(unfold(&folded)[0].1, long);
    }
}
