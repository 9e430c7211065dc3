//! The standard normalisation of emails and phone numbers: what the guest
//! SDK applies to the fields a plugin declares, and what the host's vCard and
//! iCalendar export compares values by (a value that differs only in how it
//! is written is not a change). Pure.

/// Lower-cases and trims an email address.
pub fn normalize_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Reduces a phone number to a leading `+` and digits, when it is made only of
/// digits and the usual separators; anything else (an extension, letters) is
/// left as written rather than guessed at.
pub fn normalize_phone(s: &str) -> String {
    let t = s.trim();
    let mut out = String::with_capacity(t.len());
    for (i, c) in t.chars().enumerate() {
        match c {
            '0'..='9' => out.push(c),
            '+' if i == 0 => out.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return t.to_string(),
        }
    }
    if out.trim_start_matches('+').is_empty() {
        t.to_string()
    } else {
        out
    }
}

/// Normalises an address: an email (it has an `@`) as [`normalize_email`],
/// anything else as a phone number ([`normalize_phone`]).
pub fn normalize_address(s: &str) -> String {
    if s.contains('@') {
        normalize_email(s)
    } else {
        normalize_phone(s)
    }
}
