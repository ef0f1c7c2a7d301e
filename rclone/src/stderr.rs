//! Reading rclone's log lines (`2026/12/04 05:36:24 ERROR : message`).

/// Longest gist returned, in characters.
const MAX_GIST: usize = 240;

/// Levels whose lines report a failure.
const ERROR_LEVELS: [&str; 4] = ["ERROR", "CRITICAL", "ALERT", "EMERGENCY"];

/// rclone's prefixes that say nothing to a berth user.
const WRAPPERS: [&str; 3] = ["error listing: ", "NewFs: ", "Fatal error: "];
/// rclone's `Failed to create file system for "remote:path": ` prefix.
const FS_WRAPPER: &str = "Failed to create file system for \"";
/// rclone's `Attempt 1/3 failed with 1 errors and: ` prefix.
const ATTEMPT_WRAPPER: (&str, &str) = ("Attempt ", " errors and: ");

/// The level and message of one line; lines not from rclone's logger (a
/// flag error, a Go panic) have no level.
pub(crate) fn parse_line(line: &str) -> (Option<&str>, &str) {
    let line = line.trim();
    // `YYYY/MM/DD HH:MM:SS ` (rclone's default timestamp).
    let rest = match line.as_bytes() {
        [y, _, _, _, b'/', _, _, b'/', _, _, b' ', _, _, b':', _, _, b':', _, _, b' ', ..]
            if y.is_ascii_digit() =>
        {
            &line[20..]
        }
        _ => line,
    };
    match rest.split_once(':') {
        Some((level, message)) if is_level(level.trim_end()) => {
            (Some(level.trim_end()), message.trim())
        }
        _ => (None, rest),
    }
}

fn is_level(word: &str) -> bool {
    matches!(
        word,
        "DEBUG" | "INFO" | "NOTICE" | "WARNING" | "ERROR" | "CRITICAL" | "ALERT" | "EMERGENCY"
    )
}

/// The messages of the lines that report a failure, or of every non-empty
/// line when none does.
pub(crate) fn error_lines(stderr: &str) -> Vec<&str> {
    let lines: Vec<(Option<&str>, &str)> = stderr
        .lines()
        .map(parse_line)
        .filter(|(_, message)| !message.is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .filter(|(level, _)| level.is_some_and(|l| ERROR_LEVELS.contains(&l)))
        .map(|(_, message)| *message)
        .collect();
    if errors.is_empty() {
        lines.into_iter().map(|(_, message)| message).collect()
    } else {
        errors
    }
}

/// One line telling what went wrong: the first failure, without rclone's
/// wrappers, at most 240 characters.
pub(crate) fn gist(stderr: &str) -> String {
    let Some(first) = error_lines(stderr).into_iter().next() else {
        return "no message from rclone".into();
    };
    let message = strip_wrappers(first);
    match message.char_indices().nth(MAX_GIST) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

fn strip_wrappers(mut message: &str) -> &str {
    loop {
        let wrapped = message
            .strip_prefix(FS_WRAPPER)
            .and_then(|rest| rest.split_once("\": "))
            .or_else(|| {
                message
                    .strip_prefix(ATTEMPT_WRAPPER.0)
                    .and_then(|rest| rest.split_once(ATTEMPT_WRAPPER.1))
            });
        match wrapped {
            Some((_, rest)) => message = rest,
            None => match WRAPPERS.iter().find_map(|w| message.strip_prefix(w)) {
                Some(rest) => message = rest,
                None => return message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_timestamp_level_and_message() {
        assert_eq!(
            parse_line("2026/12/04 05:36:24 ERROR : error listing: 401 Unauthorized"),
            (Some("ERROR"), "error listing: 401 Unauthorized")
        );
        assert_eq!(
            parse_line("2026/12/04 05:36:11 CRITICAL: Failed to create file system"),
            (Some("CRITICAL"), "Failed to create file system")
        );
        assert_eq!(
            parse_line("Error: unknown flag: --nope"),
            (None, "Error: unknown flag: --nope")
        );
    }

    #[test]
    fn gist_is_the_first_error_without_wrappers() {
        let stderr = "2026/12/04 05:36:11 NOTICE: s{e9pgU}: No host key validation is being performed.\n\
            2026/12/04 05:36:11 CRITICAL: Failed to create file system for \"s:\": NewFs: couldn't connect SSH: dial tcp 127.0.0.1:1: connect: connection refused\n";
        assert_eq!(
            gist(stderr),
            "couldn't connect SSH: dial tcp 127.0.0.1:1: connect: connection refused"
        );
        assert_eq!(gist(""), "no message from rclone");
        assert_eq!(gist("plain text\nsecond"), "plain text");
        assert_eq!(
            gist("2026/12/04 06:44:07 ERROR : Attempt 1/1 failed with 1 errors and: remove /x/d: directory not empty"),
            "remove /x/d: directory not empty"
        );
        let long = format!("2026/12/04 05:36:11 ERROR : {}", "é".repeat(300));
        assert_eq!(gist(&long).chars().count(), MAX_GIST + 1);
    }
}
