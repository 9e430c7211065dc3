//! iCalendar events as `calendar` items and to-dos as `tasks` items, and
//! back (the table in docs/cards.md).
//!
//! An item is one UID: its main component (the one without a
//! RECURRENCE-ID) and the overrides of single occurrences, which stay in its
//! lines. Each item's `x-ical` field holds a calendar of its own: the file's
//! calendar properties (PRODID, X-WR-CALNAME, ...), its VTIMEZONEs and other
//! components, and the item's components, all as the file wrote them; export
//! merges such calendars back into one file. Times are read in the zone
//! their TZID names (an IANA or Windows name, or a VTIMEZONE of the file,
//! resolved by calcard) and kept as UTC in `start`, `end` and `due`, the
//! zone's name in `timeZone`.

use super::lines::{self, Component};
use super::{Ctx, FieldMap, Imported, Item, invalid, read_text, write_text};
use crate::error::Result;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// The field that carries an item's calendar.
pub const RAW: &str = "x-ical";

/// The component kind of each entity type.
fn kind(entity: &str) -> &'static str {
    if entity == "tasks" { "VTODO" } else { "VEVENT" }
}

/// The item's main component in its calendar `c`.
fn main(c: &Component) -> Option<&Component> {
    let items = || {
        c.children
            .iter()
            .filter(|k| k.name == "VEVENT" || k.name == "VTODO")
    };
    items()
        .find(|k| k.prop("RECURRENCE-ID").is_none())
        .or_else(|| items().next())
}

fn main_mut(c: &mut Component) -> Option<&mut Component> {
    let i = c
        .children
        .iter()
        .position(|k| {
            (k.name == "VEVENT" || k.name == "VTODO") && k.prop("RECURRENCE-ID").is_none()
        })
        .or_else(|| {
            c.children
                .iter()
                .position(|k| k.name == "VEVENT" || k.name == "VTODO")
        })?;
    c.children.get_mut(i)
}

/// A text property of the main component.
fn text(c: &Component, name: &str) -> Option<Value> {
    main(c).and_then(|m| read_text(m, name))
}

fn set_text(c: &mut Component, name: &str, v: Option<&Value>) {
    if let Some(m) = main_mut(c) {
        write_text(m, name, v);
    }
}

/// Fields both kinds share.
macro_rules! common_fields {
    () => {
        [
            FieldMap {
                field: "id",
                read: |c| text(c, "UID"),
                write: |c, v, _| set_text(c, "UID", v),
            },
            FieldMap {
                field: "title",
                read: |c| {
                    Some(text(c, "SUMMARY").unwrap_or_else(|| Value::String(NO_TITLE.into())))
                },
                write: |c, v, _| set_text(c, "SUMMARY", v.filter(|v| v.as_str() != Some(NO_TITLE))),
            },
            FieldMap {
                field: "lastModified",
                read: |c| {
                    let m = main(c)?;
                    let p = m.prop("LAST-MODIFIED").or_else(|| m.prop("DTSTAMP"))?;
                    super::parse_utc(&p.value).map(|t| Value::String(super::rfc3339(t)))
                },
                write: |c, v, _| {
                    if let Some(m) = main_mut(c) {
                        super::set_prop(
                            m,
                            "LAST-MODIFIED",
                            Some(Vec::new()),
                            v.and_then(super::utc_value),
                        );
                    }
                },
            },
        ]
    };
}

/// A component with no SUMMARY gets this title (a calendar item has one).
const NO_TITLE: &str = "(no title)";

/// The contract's calendar fields, by the property each lives in.
pub static CALENDAR: std::sync::LazyLock<Vec<FieldMap>> = std::sync::LazyLock::new(|| {
    let mut v: Vec<FieldMap> = common_fields!().into_iter().collect();
    v.extend([
        FieldMap {
            field: "timeZone",
            read: |c| {
                main(c)?
                    .prop("DTSTART")?
                    .param("TZID")
                    .map(|z| Value::String(z.into()))
            },
            write: |c, _, item| rewrite_times(c, item),
        },
        FieldMap {
            field: "start",
            read: |c| time_field(c, "DTSTART"),
            write: |c, _, item| rewrite_times(c, item),
        },
        FieldMap {
            field: "end",
            read: read_end,
            write: |c, _, item| rewrite_times(c, item),
        },
        FieldMap {
            field: "allDay",
            read: |c| is_date(main(c)?.prop("DTSTART")?).then_some(Value::Bool(true)),
            write: |c, _, item| rewrite_times(c, item),
        },
        FieldMap {
            field: "recurrence",
            read: read_recurrence,
            write: |c, v, _| write_recurrence(c, v),
        },
        FieldMap {
            field: "location",
            read: |c| text(c, "LOCATION"),
            write: |c, v, _| set_text(c, "LOCATION", v),
        },
        FieldMap {
            field: "description",
            read: |c| text(c, "DESCRIPTION"),
            write: |c, v, _| set_text(c, "DESCRIPTION", v),
        },
        FieldMap {
            field: "attendees",
            read: read_attendees,
            write: |c, v, _| write_attendees(c, v),
        },
        FieldMap {
            field: "visibility",
            read: |c| {
                let v = text(c, "CLASS")?.as_str()?.to_ascii_lowercase();
                ["public", "private", "confidential"]
                    .contains(&v.as_str())
                    .then_some(Value::String(v))
            },
            write: |c, v, _| {
                let v = v
                    .and_then(Value::as_str)
                    .map(|s| Value::String(s.to_ascii_uppercase()));
                set_text(c, "CLASS", v.as_ref())
            },
        },
    ]);
    v
});

/// The contract's task fields, by the property each lives in.
pub static TASKS: std::sync::LazyLock<Vec<FieldMap>> = std::sync::LazyLock::new(|| {
    let mut v: Vec<FieldMap> = common_fields!().into_iter().collect();
    v.extend([
        FieldMap {
            field: "status",
            read: |c| {
                let s = text(c, "STATUS").and_then(|v| v.as_str().map(str::to_ascii_uppercase));
                let status = match s.as_deref() {
                    Some("IN-PROCESS") => "in_progress",
                    Some("COMPLETED") => "done",
                    Some("CANCELLED") => "cancelled",
                    _ => "todo",
                };
                Some(Value::String(status.into()))
            },
            write: |c, v, _| {
                let s = match v.and_then(Value::as_str) {
                    Some("in_progress") => "IN-PROCESS",
                    Some("done") => "COMPLETED",
                    Some("cancelled") => "CANCELLED",
                    _ => "NEEDS-ACTION",
                };
                set_text(c, "STATUS", Some(&Value::String(s.into())))
            },
        },
        FieldMap {
            field: "due",
            read: |c| {
                let p = main(c)?.prop("DUE")?;
                if is_date(p) {
                    let d = NaiveDate::parse_from_str(p.value.trim(), "%Y%m%d").ok()?;
                    return Some(Value::String(d.format("%Y-%m-%d").to_string()));
                }
                time_field(c, "DUE")
            },
            write: |c, v, item| {
                let zone = item.get("timeZone").and_then(Value::as_str);
                let date_only = v.and_then(Value::as_str).is_some_and(|s| s.len() == 10);
                let written = v.and_then(Value::as_str).and_then(|s| {
                    if date_only {
                        Some((
                            vec![("VALUE".to_string(), "DATE".to_string())],
                            s.replace('-', ""),
                        ))
                    } else {
                        time_value(s, zone, false)
                    }
                });
                if let Some(m) = main_mut(c) {
                    match written {
                        Some((params, value)) => {
                            super::set_prop(m, "DUE", Some(params), Some(value))
                        }
                        None => super::set_prop(m, "DUE", None, None),
                    }
                }
            },
        },
        FieldMap {
            field: "priority",
            read: |c| {
                let n: u8 = text(c, "PRIORITY")?.as_str()?.trim().parse().ok()?;
                let p = match n {
                    1..=4 => "high",
                    5 => "normal",
                    6..=9 => "low",
                    _ => return None,
                };
                Some(Value::String(p.into()))
            },
            write: |c, v, _| {
                let n = match v.and_then(Value::as_str) {
                    Some("high") => Some("1"),
                    Some("normal") => Some("5"),
                    Some("low") => Some("9"),
                    _ => None,
                };
                set_text(c, "PRIORITY", n.map(|n| Value::String(n.into())).as_ref())
            },
        },
        FieldMap {
            field: "notes",
            read: |c| text(c, "DESCRIPTION"),
            write: |c, v, _| set_text(c, "DESCRIPTION", v),
        },
    ]);
    v
});

fn fields(entity: &str) -> &'static [FieldMap] {
    if entity == "tasks" { &TASKS } else { &CALENDAR }
}

/// Whether a time property holds a `DATE` (an all-day event's day).
fn is_date(p: &lines::Prop) -> bool {
    p.param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || (p.value.trim().len() == 8 && !p.value.contains('T'))
}

/// A time property of the main component in UTC: its TZID's zone, a `Z`,
/// or (a floating time, or an all-day date) read as UTC.
fn time_field(c: &Component, name: &str) -> Option<Value> {
    let p = main(c)?.prop(name)?;
    instant(c, p).map(|t| Value::String(super::rfc3339(t)))
}

/// When a time property is, in UTC.
fn instant(c: &Component, p: &lines::Prop) -> Option<DateTime<Utc>> {
    let v = p.value.trim();
    if is_date(p) {
        // A DATE some programs write with a time after it: its day.
        let d = NaiveDate::parse_from_str(v.get(..8)?, "%Y%m%d").ok()?;
        return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
    }
    if v.ends_with(['Z', 'z']) {
        return super::parse_utc(v);
    }
    let local =
        NaiveDateTime::parse_from_str(v.split('.').next().unwrap_or(v), "%Y%m%dT%H%M%S").ok()?;
    match p.param("TZID") {
        Some(tzid) => match zone(c, tzid) {
            Some(tz) => tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            None => {
                let offset = chrono::FixedOffset::east_opt(vtimezone_offset(c, tzid, local)?)?;
                offset
                    .from_local_datetime(&local)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }
        },
        None => Some(Utc.from_utc_datetime(&local)),
    }
}

/// The UTC offset (seconds) at `local` of the calendar's own VTIMEZONE
/// `tzid`, for a zone no name resolves ("Customized Time Zone 1", as some
/// programs write): the latest STANDARD or DAYLIGHT onset at or before it
/// gives its TZOFFSETTO. Onsets are each part's DTSTART and, for a yearly
/// RRULE, its day in the years around `local` (BYMONTH with BYDAY such as
/// `-1SU` or `2SU`, or BYMONTHDAY): the rules zones are written with.
fn vtimezone_offset(c: &Component, tzid: &str, local: NaiveDateTime) -> Option<i32> {
    use chrono::Datelike;
    let tz = c.children.iter().find(|k| {
        k.name == "VTIMEZONE" && k.prop("TZID").map(super::text_of).as_deref() == Some(tzid)
    })?;
    let mut best: Option<(NaiveDateTime, i32)> = None;
    let mut earliest: Option<(NaiveDateTime, i32)> = None;
    for part in tz
        .children
        .iter()
        .filter(|k| k.name == "STANDARD" || k.name == "DAYLIGHT")
    {
        let start =
            NaiveDateTime::parse_from_str(part.prop("DTSTART")?.value.trim(), "%Y%m%dT%H%M%S")
                .ok()?;
        let to = utc_offset(&part.prop("TZOFFSETTO")?.value)?;
        if earliest.is_none_or(|(t, _)| start < t) {
            earliest = Some((start, to));
        }
        let mut onsets = vec![start];
        if let Some(rule) = part.prop("RRULE") {
            for year in [local.year() - 1, local.year()] {
                onsets.extend(yearly_onset(&rule.value, start, year));
            }
        }
        for o in onsets.into_iter().filter(|o| *o <= local && *o >= start) {
            if best.is_none_or(|(t, _)| o > t) {
                best = Some((o, to));
            }
        }
    }
    best.or(earliest).map(|(_, to)| to)
}

/// `+0100`, `-0500`, `+013000` in seconds east of UTC.
fn utc_offset(v: &str) -> Option<i32> {
    let v = v.trim();
    let sign = match v.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &v[1..];
    let part = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<i32>().ok());
    let secs = part(0..2)? * 3600 + part(2..4)? * 60 + part(4..6).unwrap_or(0);
    Some(sign * secs)
}

/// The onset a yearly rule gives in `year` (at `start`'s time of day).
fn yearly_onset(rule: &str, start: NaiveDateTime, year: i32) -> Option<NaiveDateTime> {
    use chrono::Datelike;
    let mut month = start.month();
    let (mut by_day, mut by_month_day) = (None, None);
    for part in rule.split(';') {
        match part.split_once('=')? {
            ("FREQ", f) if f != "YEARLY" => return None,
            ("BYMONTH", m) => month = m.split(',').next()?.parse().ok()?,
            ("BYDAY", d) => by_day = Some(d.split(',').next()?.to_string()),
            ("BYMONTHDAY", d) => by_month_day = d.split(',').next()?.parse::<i32>().ok(),
            ("UNTIL", u) if super::parse_utc(u).is_some_and(|u| u.year() < year) => return None,
            _ => {}
        }
    }
    let day = match (by_day, by_month_day) {
        (Some(d), _) => {
            let (n, wd) = d.split_at(d.len().checked_sub(2)?);
            let weekday: chrono::Weekday = match wd {
                "MO" => chrono::Weekday::Mon,
                "TU" => chrono::Weekday::Tue,
                "WE" => chrono::Weekday::Wed,
                "TH" => chrono::Weekday::Thu,
                "FR" => chrono::Weekday::Fri,
                "SA" => chrono::Weekday::Sat,
                _ => chrono::Weekday::Sun,
            };
            let n: i32 = if n.is_empty() { 1 } else { n.parse().ok()? };
            let n = if n > 0 { u8::try_from(n).ok()? } else { 0 };
            if n > 0 {
                NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)?
            } else {
                // The last such weekday of the month (`-1SU`).
                (1..=5)
                    .rev()
                    .find_map(|k| NaiveDate::from_weekday_of_month_opt(year, month, weekday, k))?
            }
        }
        (None, Some(d)) => NaiveDate::from_ymd_opt(year, month, u32::try_from(d).ok()?)?,
        (None, None) => NaiveDate::from_ymd_opt(year, month, start.day())?,
    };
    Some(day.and_time(start.time()))
}

/// The zone a TZID names: an IANA or Windows name, or a VTIMEZONE of the
/// item's calendar (calcard reads those).
fn zone(c: &Component, tzid: &str) -> Option<calcard::common::timezone::Tz> {
    use std::str::FromStr;
    let tzid = tzid.trim_matches('"');
    if let Ok(tz) = chrono_tz::Tz::from_str(tzid) {
        return Some(tz.into());
    }
    if let Ok(tz) = calcard::common::timezone::Tz::from_str(tzid) {
        return Some(tz);
    }
    // libical's and Mozilla's prefixed names:
    // `/freeassociation.sourceforge.net/Europe/Berlin`.
    let segments: Vec<&str> = tzid.split('/').filter(|s| !s.is_empty()).collect();
    for k in 1..segments.len() {
        if let Ok(tz) = chrono_tz::Tz::from_str(&segments[k..].join("/")) {
            return Some(tz.into());
        }
    }
    let text = lines::fold(&c.lines());
    match calcard::Parser::new(&text).entry() {
        calcard::Entry::ICalendar(cal) => cal.build_tz_resolver().resolve(tzid),
        _ => None,
    }
}

/// `DTEND`; else `DTSTART` + `DURATION`; else the day after an all-day
/// start, or the start itself (RFC 5545 §3.6.1).
fn read_end(c: &Component) -> Option<Value> {
    let m = main(c)?;
    if let Some(p) = m.prop("DTEND") {
        return instant(c, p).map(|t| Value::String(super::rfc3339(t)));
    }
    let start_prop = m.prop("DTSTART")?;
    let start = instant(c, start_prop)?;
    let end = match m.prop("DURATION") {
        Some(d) => start.checked_add_signed(duration(&d.value)?)?,
        None if is_date(start_prop) => start.checked_add_signed(chrono::Duration::days(1))?,
        None => start,
    };
    Some(Value::String(super::rfc3339(end)))
}

/// An RFC 5545 duration (`P1D`, `PT1H30M`, `-PT15M`, `P2W`).
fn duration(v: &str) -> Option<chrono::Duration> {
    let v = v.trim();
    let (sign, rest) = match v.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, v.strip_prefix('+').unwrap_or(v)),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total = chrono::Duration::zero();
    let mut number = String::new();
    for ch in rest.chars() {
        match ch {
            '0'..='9' => number.push(ch),
            'T' => {}
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                let part = match ch {
                    'W' => chrono::Duration::try_weeks(n),
                    'D' => chrono::Duration::try_days(n),
                    'H' => chrono::Duration::try_hours(n),
                    'M' => chrono::Duration::try_minutes(n),
                    _ => chrono::Duration::try_seconds(n),
                }?;
                total = total.checked_add(&part)?;
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(total * sign)
}

/// A time written back: in `zone` when given and known (`TZID=`), else
/// UTC; a date for an all-day event.
fn time_value(
    rfc3339: &str,
    zone_name: Option<&str>,
    all_day: bool,
) -> Option<(Vec<(String, String)>, String)> {
    let t = DateTime::parse_from_rfc3339(rfc3339)
        .ok()?
        .with_timezone(&Utc);
    if all_day {
        return Some((
            vec![("VALUE".into(), "DATE".into())],
            t.format("%Y%m%d").to_string(),
        ));
    }
    if let Some(name) = zone_name {
        use std::str::FromStr;
        let tz = chrono_tz::Tz::from_str(name)
            .ok()
            .map(calcard::common::timezone::Tz::from)
            .or_else(|| calcard::common::timezone::Tz::from_str(name).ok());
        if let Some(tz) = tz {
            let local = t.with_timezone(&tz).naive_local();
            return Some((
                vec![("TZID".into(), name.to_string())],
                local.format("%Y%m%dT%H%M%S").to_string(),
            ));
        }
    }
    Some((Vec::new(), t.format("%Y%m%dT%H%M%SZ").to_string()))
}

/// `DTSTART` and `DTEND` written from the item's start, end, allDay and
/// timeZone (a `DURATION` gives way to the `DTEND`).
fn rewrite_times(c: &mut Component, item: &Item) {
    let zone = item.get("timeZone").and_then(Value::as_str);
    let all_day = item.get("allDay").and_then(Value::as_bool).unwrap_or(false);
    let start = item
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| time_value(s, zone, all_day));
    let end = item
        .get("end")
        .and_then(Value::as_str)
        .and_then(|s| time_value(s, zone, all_day));
    let Some(m) = main_mut(c) else { return };
    if let Some((params, value)) = start {
        super::set_prop(m, "DTSTART", Some(params), Some(value));
    }
    if let Some((params, value)) = end {
        m.props.retain(|p| p.name != "DURATION");
        super::set_prop(m, "DTEND", Some(params), Some(value));
    }
}

/// The properties that say when a recurring event recurs.
const RECURRENCE: [&str; 4] = ["RRULE", "RDATE", "EXDATE", "EXRULE"];

/// A recurring event's RRULE, RDATE and EXDATE lines, as written: when it
/// happens again (a busy block keeps them).
fn read_recurrence(c: &Component) -> Option<Value> {
    let lines: Vec<Value> = main(c)?
        .props
        .iter()
        .filter(|p| RECURRENCE.contains(&p.name.as_str()))
        .map(|p| Value::String(p.raw.clone()))
        .collect();
    (!lines.is_empty()).then_some(Value::Array(lines))
}

/// Puts the recurrence lines given in place of the component's own.
fn write_recurrence(c: &mut Component, v: Option<&Value>) {
    let given: Vec<&str> = v
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let text = format!("BEGIN:X\r\n{}\r\nEND:X", given.join("\r\n"));
    let props = lines::parse(&text)
        .map(|mut t| t.remove(0).props)
        .unwrap_or_default();
    let Some(m) = main_mut(c) else { return };
    m.props.retain(|p| !RECURRENCE.contains(&p.name.as_str()));
    m.props.extend(
        props
            .into_iter()
            .filter(|p| RECURRENCE.contains(&p.name.as_str())),
    );
}

fn read_attendees(c: &Component) -> Option<Value> {
    let list: Vec<Value> = main(c)?
        .props
        .iter()
        .filter(|p| p.name == "ATTENDEE")
        .map(|p| Value::String(mailto(&p.value)))
        .collect();
    (!list.is_empty()).then_some(Value::Array(list))
}

fn mailto(v: &str) -> String {
    let v = v.trim();
    match v.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("mailto:") => v[7..].to_string(),
        _ => v.to_string(),
    }
}

/// Keeps the attendees still listed (with their parameters), removes the
/// others, adds the new ones.
fn write_attendees(c: &mut Component, v: Option<&Value>) {
    let want: Vec<String> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let Some(m) = main_mut(c) else { return };
    m.props.retain(|p| {
        p.name != "ATTENDEE"
            || want
                .iter()
                .any(|w| w.eq_ignore_ascii_case(&mailto(&p.value)))
    });
    for w in &want {
        let present = m
            .props
            .iter()
            .any(|p| p.name == "ATTENDEE" && w.eq_ignore_ascii_case(&mailto(&p.value)));
        if !present {
            let raw = format!("ATTENDEE:mailto:{w}");
            if let Ok(mut parsed) = lines::parse(&format!("BEGIN:X\r\n{raw}\r\nEND:X")) {
                m.props.extend(parsed.remove(0).props);
            }
        }
    }
}

/// The events and to-dos of an `.ics` file.
///
/// Long: one pass over each calendar that sorts its components into the
/// calendar's own, the events and the to-dos by UID, then one item a UID.
pub fn import(top: &[Component], ctx: &Ctx<'_>) -> Result<Imported> {
    let mut calendar: Vec<Item> = Vec::new();
    let mut tasks: Vec<Item> = Vec::new();
    let mut unmapped = Vec::new();
    if let Some(other) = top.iter().find(|c| c.name != "VCALENDAR") {
        return Err(invalid(
            ctx.path,
            other.line,
            &format!(
                "`BEGIN:{}` where an iCalendar file has `BEGIN:VCALENDAR`",
                other.name
            ),
        ));
    }
    // The file's calendars' own properties and components (VTIMEZONEs,
    // VJOURNALs, ...), each once, which every item's calendar keeps: a file
    // of several calendars comes back as one.
    let mut header: Vec<lines::Prop> = Vec::new();
    let mut shared: Vec<Component> = Vec::new();
    for cal in top {
        for p in &cal.props {
            if !header.iter().any(|h| h.raw == p.raw) {
                header.push(p.clone());
            }
        }
        for k in cal
            .children
            .iter()
            .filter(|k| k.name != "VEVENT" && k.name != "VTODO")
        {
            if !shared.iter().any(|s| same_shared(s, k)) {
                shared.push(k.clone());
            }
        }
    }
    for cal in top {
        let mut groups: Vec<(String, Vec<&Component>)> = Vec::new();
        for k in cal
            .children
            .iter()
            .filter(|k| k.name == "VEVENT" || k.name == "VTODO")
        {
            let id = k
                .prop("UID")
                .map(super::text_of)
                .filter(|u| (1..=256).contains(&u.chars().count()))
                .unwrap_or_else(|| {
                    ctx.missing_id(if k.name == "VTODO" { "vtodo" } else { "vevent" }, k)
                });
            let key = format!("{}\u{0}{id}", k.name);
            match groups.iter_mut().find(|(g, _)| *g == key) {
                Some((_, members)) => members.push(k),
                None => groups.push((key, vec![k])),
            }
        }
        if groups.is_empty() {
            unmapped.extend(
                cal.children
                    .iter()
                    .filter(|k| k.name != "VTIMEZONE")
                    .map(|k| k.name.clone()),
            );
        }
        for (key, members) in groups {
            let mut own = Component {
                name: "VCALENDAR".into(),
                line: cal.line,
                props: header.clone(),
                children: shared.clone(),
            };
            own.children.extend(members.iter().map(|m| (*m).clone()));
            let entity = if key.starts_with("VTODO") {
                "tasks"
            } else {
                "calendar"
            };
            let item = import_one(
                &own,
                entity,
                key.split('\u{0}').nth(1).unwrap_or_default(),
                ctx,
                members[0],
            )?;
            if entity == "tasks" {
                tasks.push(item)
            } else {
                calendar.push(item)
            }
        }
    }
    let mut items = Vec::new();
    if !calendar.is_empty() {
        items.push(("calendar".to_string(), calendar));
    }
    if !tasks.is_empty() {
        items.push(("tasks".to_string(), tasks));
    }
    Ok(Imported { items, unmapped })
}

fn import_one(
    own: &Component,
    entity: &str,
    id: &str,
    ctx: &Ctx<'_>,
    first: &Component,
) -> Result<Item> {
    let mut fields = Item::new();
    super::read_fields(own, &mut fields, self::fields(entity));
    if let Some(Value::Object(extra)) = main(own).and_then(super::read_extra) {
        for (k, v) in extra {
            fields.entry(k).or_insert(v);
        }
    }
    let mut item = Item::new();
    item.insert("id".into(), Value::String(id.to_string()));
    fields.remove("id");
    item.extend(fields);
    item.entry("lastModified")
        .or_insert_with(|| Value::String(ctx.fallback_time.to_string()));
    if entity == "calendar" {
        let (start, end) = (
            item.get("start").and_then(Value::as_str),
            item.get("end").and_then(Value::as_str),
        );
        let Some(start) = start else {
            let at = first.prop("DTSTART").map_or(first.line, |p| p.line);
            return Err(invalid(
                ctx.path,
                at,
                &format!("the event `{id}` has no start this host can read (DTSTART)"),
            ));
        };
        if let Some(end) = end
            && end < start
        {
            let at = main(own)
                .and_then(|m| m.prop("DTEND"))
                .map_or(first.line, |p| p.line);
            return Err(invalid(
                ctx.path,
                at,
                &format!("the event `{id}` ends ({end}) before it starts ({start})"),
            ));
        }
    }
    item.insert(RAW.into(), super::lines_value(own));
    Ok(item)
}

/// Events or to-dos as one `.ics` file: the items' calendars merged (the
/// first one's properties, each VTIMEZONE and other shared component once).
pub fn export(entity: &str, items: &[Item]) -> Result<String> {
    let mut out = Component {
        name: "VCALENDAR".into(),
        ..Component::default()
    };
    // The calendars' shared components (VTIMEZONEs first) before the items'.
    let mut own = Vec::new();
    for item in items {
        let cal = export_one(entity, item);
        for p in &cal.props {
            if !out.props.iter().any(|o| o.raw == p.raw) {
                out.props.push(p.clone());
            }
        }
        for k in cal.children {
            if k.name == "VEVENT" || k.name == "VTODO" {
                own.push(k);
            } else if !out.children.iter().any(|o| same_shared(o, &k)) {
                out.children.push(k);
            }
        }
    }
    if items.is_empty() {
        out = fresh_calendar();
    }
    out.children.extend(own);
    Ok(lines::fold(&out.lines()))
}

/// Two shared components are one when they are written alike (a file may
/// hold two definitions of one TZID; both are kept).
fn same_shared(a: &Component, b: &Component) -> bool {
    a.name == b.name && a.lines() == b.lines()
}

fn fresh_calendar() -> Component {
    let mut c = Component {
        name: "VCALENDAR".into(),
        ..Component::default()
    };
    super::set_prop(&mut c, "VERSION", Some(Vec::new()), Some("2.0".into()));
    super::set_prop(
        &mut c,
        "PRODID",
        Some(Vec::new()),
        Some("-//gold//cross-domain-sync//EN".into()),
    );
    c
}

/// The TZIDs the calendar's components name that none of its VTIMEZONEs
/// defines.
fn undefined_zones(cal: &Component) -> Vec<String> {
    fn named(c: &Component, out: &mut Vec<String>) {
        for p in &c.props {
            if let Some(z) = p.param("TZID")
                && !out.iter().any(|o| o == z)
            {
                out.push(z.to_string());
            }
        }
        for k in c.children.iter().filter(|k| k.name != "VTIMEZONE") {
            named(k, out);
        }
    }
    let mut out = Vec::new();
    named(cal, &mut out);
    out.retain(|z| {
        !cal.children.iter().any(|k| {
            k.name == "VTIMEZONE" && k.prop("TZID").is_some_and(|p| super::text_of(p) == *z)
        })
    });
    out
}

/// VTIMEZONEs for the zones `names` (IANA or Windows names), made by
/// calcard from its zone data for the span of the calendar's times, as RFC
/// 5545 asks of a TZID that an export writes.
fn add_zones(cal: &mut Component, names: &[&String]) {
    let text = lines::fold(&cal.lines());
    let calcard::Entry::ICalendar(mut parsed) = calcard::Parser::new(&text).entry() else {
        return;
    };
    parsed.add_missing_timezones();
    let Ok(mut written) = lines::parse(&parsed.to_string()) else {
        return;
    };
    let Some(made) = written.pop() else { return };
    let zones = made.children.into_iter().filter(|k| {
        k.name == "VTIMEZONE"
            && k.prop("TZID")
                .is_some_and(|p| names.iter().any(|n| **n == super::text_of(p)))
    });
    let at = cal
        .children
        .iter()
        .position(|k| k.name != "VTIMEZONE")
        .unwrap_or(0);
    for (i, z) in zones.enumerate() {
        cal.children.insert(at + i, z);
    }
}

/// One item as a calendar of its own: its lines with what changed written
/// in, or, for an item that has none, a calendar made from its fields.
pub fn export_one(entity: &str, item: &Item) -> Component {
    let (mut cal, fresh) = match super::raw_component(item, RAW, "VCALENDAR") {
        Some(c) if main(&c).is_some() => (c, false),
        _ => {
            let mut c = fresh_calendar();
            c.children.push(Component {
                name: kind(entity).into(),
                ..Component::default()
            });
            (c, true)
        }
    };
    // A component with no LAST-MODIFIED or DTSTAMP keeps having none (its
    // lastModified came from the file's time); its UID, if it had none,
    // stays unwritten (its id was made from its lines).
    let has = |name: &str| main(&cal).is_some_and(|m| m.prop(name).is_some());
    let stamped = fresh || super::read_field(fields(entity), "lastModified", &cal).is_some();
    let uid = fresh || has("UID");
    let maps = fields(entity)
        .iter()
        .filter(|m| (stamped || m.field != "lastModified") && (uid || m.field != "id"));
    let undefined = undefined_zones(&cal);
    super::write_fields(&mut cal, item, maps);
    if fresh && let Some(m) = main_mut(&mut cal) {
        // RFC 5545 asks every event and to-do for one.
        let stamp = item.get("lastModified").and_then(super::utc_value);
        super::set_prop(m, "DTSTAMP", Some(Vec::new()), stamp);
    }
    let now_undefined = undefined_zones(&cal);
    let new: Vec<&String> = now_undefined
        .iter()
        .filter(|z| !undefined.contains(z))
        .collect();
    if !new.is_empty() {
        add_zones(&mut cal, &new);
    }
    let extra = super::extra_of(item, fields(entity), RAW);
    if let Some(m) = main_mut(&mut cal) {
        super::write_extra(m, extra.as_ref());
    }
    cal
}
