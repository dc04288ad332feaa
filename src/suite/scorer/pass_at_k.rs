//! Functional correctness by execution (HumanEval/MBPP): each completion is appended to the
//! prompt, followed by the item's tests, and run in the sandbox. pass@k uses the unbiased
//! estimator of Chen et al. (2021): `1 − C(n−c, k) / C(n, k)` for `n` samples of which `c` pass.

use crate::suite::item::Item;
use crate::suite::sandbox::{check_program, run_python, Limits, Outcome, SandboxError};

/// Unbiased pass@k from `n` samples with `c` correct.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    // 1 − Π_{i=n−c+1}^{n} (1 − k/i), numerically stable
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

/// The program that checks one completion: HumanEval tests define `check(candidate)` and are
/// called with the entry point; MBPP-style tests are bare asserts.
pub fn program(item: &Item, completion: &str) -> String {
    let test = item.test.as_deref().unwrap_or("");
    let entry = if test.contains("def check(") {
        item.entry_point.as_deref()
    } else {
        None
    };
    check_program(&format!("{}{}", item.input, completion), test, entry)
}

/// Run one completion's tests.
pub fn run(item: &Item, completion: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
    run_python(&program(item, completion), limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_matches_known_values() {
        assert_eq!(pass_at_k(1, 1, 1), 1.0);
        assert_eq!(pass_at_k(1, 0, 1), 0.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
        // 1 − C(7,5)/C(10,5) = 1 − 21/252
        assert!((pass_at_k(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
        assert_eq!(pass_at_k(10, 8, 5), 1.0);
    }

    #[test]
    fn humaneval_and_mbpp_style_programs() {
        let he = Item {
            input: "def add(a, b):\n    \"\"\"Add.\"\"\"\n".into(),
            test: Some("def check(candidate):\n    assert candidate(1, 2) == 3\n".into()),
            entry_point: Some("add".into()),
            ..Default::default()
        };
        assert!(program(&he, "    return a + b\n").ends_with("check(add)\n"));
        let mbpp = Item {
            input: "".into(),
            test: Some("assert add(1, 2) == 3\n".into()),
            entry_point: Some("add".into()),
            ..Default::default()
        };
        assert!(!program(&mbpp, "def add(a, b):\n    return a + b\n").contains("check("));
        if crate::suite::sandbox::find_python().is_ok() {
            assert!(run(&he, "    return a + b\n", &Limits::default())
                .unwrap()
                .status
                .passed());
            assert!(!run(&he, "    return a - b\n", &Limits::default())
                .unwrap()
                .status
                .passed());
        }
    }
}
