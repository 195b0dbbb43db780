//! An error and its causes, said in one line.

/// `err` and its causes in one line, each cause left out when the message before it
/// already says it (errors that print their source as part of their own message, as
/// ours and sqlx's do, would otherwise repeat it once per layer).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    enum Layer {
        #[error("database error: {0}")]
        Quoting(#[source] Box<Layer>),
        #[error("does not exist")]
        Leaf,
    }

    #[test]
    fn a_cause_its_error_already_quotes_is_said_once() {
        let err = anyhow::Error::new(Layer::Quoting(Box::new(Layer::Leaf)))
            .context("opening the catalogue");
        assert_eq!(
            one_line(&err),
            "opening the catalogue: database error: does not exist"
        );
        let plain = anyhow::Error::new(Layer::Leaf).context("opening the catalogue");
        assert_eq!(one_line(&plain), "opening the catalogue: does not exist");
    }
}
