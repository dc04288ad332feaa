//! Bounds on every template sft-eval renders (chat templates, suite prompt templates): a chat
//! template comes with a checkpoint downloaded from anywhere, so a loop that never ends or an
//! output of gigabytes must stop with an error naming the template, not hang or abort.

use std::io::Write;

use minijinja::{Environment, Template};

/// Instructions one render may execute (a long real chat template over a long conversation
/// takes well under a million).
pub const TEMPLATE_FUEL: u64 = 20_000_000;

/// Bytes one render may produce.
pub const MAX_RENDERED_BYTES: usize = 64 << 20;

/// Give `env` the instruction budget.
pub fn limit(env: &mut Environment) {
    env.set_fuel(Some(TEMPLATE_FUEL));
}

/// An environment with the budget, for suite prompt templates.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    limit(&mut env);
    env
}

/// Render, stopping at [`MAX_RENDERED_BYTES`] of output.
pub fn render<S: serde::Serialize>(tmpl: &Template, ctx: S) -> Result<String, minijinja::Error> {
    let mut out = Capped(Vec::new());
    tmpl.render_captured_to(ctx, &mut out).map_err(|e| {
        if out.0.len() >= MAX_RENDERED_BYTES {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!(
                    "the template renders more than {} MiB",
                    MAX_RENDERED_BYTES >> 20
                ),
            )
        } else {
            e
        }
    })?;
    String::from_utf8(out.0)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            self.0.resize(MAX_RENDERED_BYTES, 0);
            return Err(std::io::Error::other("output limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runaway_templates_stop_with_an_error() {
        let env = environment();
        let t = env
            .template_from_str(
                "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
            )
            .unwrap();
        let e = render(&t, ()).unwrap_err();
        assert_eq!(e.kind(), minijinja::ErrorKind::OutOfFuel, "{e}");
        let t = env
            .template_from_str("{% for a in range(1000) %}{{ 'x' * 99000000 }}{% endfor %}")
            .unwrap();
        let e = render(&t, ()).unwrap_err();
        assert!(e.to_string().contains("renders more than 64 MiB"), "{e}");
        let t = env.template_from_str("Q: {{ q }}").unwrap();
        assert_eq!(
            render(&t, minijinja::context! { q => "hi" }).unwrap(),
            "Q: hi"
        );
    }
}
