//! `warn_if` / `error_if`: a comparison with a check's failing count, as
//! dbt writes them (`">10"`, `"!=0"`, `">=5"`).

use std::fmt;

/// A comparison with the failing count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threshold {
    op: Op,
    value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Default for Threshold {
    /// `!=0`: any failing row counts, dbt's default.
    fn default() -> Self {
        Threshold {
            op: Op::Ne,
            value: 0,
        }
    }
}

impl Threshold {
    /// Parse `">10"`, `"!=0"`, `"= 3"`, …
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let (op, rest) = [
            ("!=", Op::Ne),
            ("<>", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .iter()
        .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r)))
        .ok_or_else(|| "it must start with >, >=, <, <=, = or !=".to_string())?;
        let value = rest
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("`{}` is not a whole number", rest.trim()))?;
        Ok(Threshold { op, value })
    }

    /// Whether `count` meets it.
    pub fn matches(&self, count: u64) -> bool {
        match self.op {
            Op::Gt => count > self.value,
            Op::Ge => count >= self.value,
            Op::Lt => count < self.value,
            Op::Le => count <= self.value,
            Op::Eq => count == self.value,
            Op::Ne => count != self.value,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ne => "!=",
        };
        write!(f, "{op}{}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_compare() {
        let t = Threshold::parse(">10").expect("parses");
        assert!(!t.matches(10) && t.matches(11));
        assert!(Threshold::parse(" >= 5 ").expect("parses").matches(5));
        assert!(Threshold::parse("<>0").expect("parses").matches(1));
        assert!(Threshold::default().matches(1) && !Threshold::default().matches(0));
        assert_eq!(Threshold::parse("!=0").expect("parses").to_string(), "!=0");
        assert!(Threshold::parse("10").is_err());
        assert!(Threshold::parse(">ten").is_err());
        assert!(Threshold::parse(">-1").is_err());
    }
}
