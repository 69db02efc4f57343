//! The command line: a scenario name, then `--option value` pairs and bare `--flag`s.

use std::collections::HashMap;

pub struct Args {
    pub scenario: String,
    opts: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    pub fn parse() -> Args {
        let mut it = std::env::args().skip(1);
        let scenario = it.next().unwrap_or_else(|| {
            eprintln!("usage: corral-bench <scenario> [--option value]...; see the source's first lines");
            std::process::exit(2);
        });
        let rest: Vec<String> = it.collect();
        let mut opts = HashMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let k = rest[i].trim_start_matches("--").to_string();
            if i + 1 < rest.len() && !rest[i + 1].starts_with("--") {
                opts.insert(k, rest[i + 1].clone());
                i += 2;
            } else {
                flags.push(k);
                i += 1;
            }
        }
        Args { scenario, opts, flags }
    }

    /// An option's value, or `default` when it is absent or does not parse.
    pub fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.opt(k).unwrap_or(default)
    }

    /// An option's value, if given and it parses.
    pub fn opt<T: std::str::FromStr>(&self, k: &str) -> Option<T> {
        self.opts.get(k).and_then(|v| v.parse().ok())
    }

    /// A required option; exits with usage status 2 without it.
    pub fn str(&self, k: &str) -> String {
        self.opts.get(k).cloned().unwrap_or_else(|| {
            eprintln!("--{k} is required");
            std::process::exit(2);
        })
    }

    pub fn flag(&self, k: &str) -> bool {
        self.flags.iter().any(|f| f == k)
    }
}
