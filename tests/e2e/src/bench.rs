//! What the benches (`benches/`) share.

/// The positive number in the environment variable `name`, or `default` when it is unset,
/// unparsable or zero.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}
