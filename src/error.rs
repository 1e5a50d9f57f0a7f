//! The one printer for an error and its causes, for wherever an error is shown to an operator.

use std::error::Error;

/// `error` and every `source()` under it, joined with ": " ("setup: writing /etc/x: No space
/// left on device"). A cause whose text is printed already (an error that shows its source) is not repeated.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("writing /etc/x")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("writing /etc/x: {0}")]
    struct Inline(#[source] std::io::Error);

    #[test]
    fn joins_the_causes_and_does_not_repeat_one_already_printed() {
        let io = || std::io::Error::other("No space left on device");
        assert_eq!(chain(&Outer(io())), "writing /etc/x: No space left on device");
        assert_eq!(chain(&Inline(io())), "writing /etc/x: No space left on device");
    }
}
