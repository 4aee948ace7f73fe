//! HTML rendering with minijinja.
//!
//! Templates are compiled once: embedded into the binary at build time (see `build.rs`)
//! and loaded into one `Environment` at startup, so a request never re-parses a
//! template. Pages that cannot change while the process runs (`/`, `/about`, the 404
//! page) are rendered once up front and served as `Bytes`. With `TEMPLATES_DIR` set the
//! templates come from disk and are re-read on every render, so they can be edited
//! without a rebuild or restart. `.html` templates auto-escape every value.

use std::path::PathBuf;

use bytes::Bytes;
use minijinja::{context, Environment, Value};

use crate::config::Config;

/// Things said about shipping software and containers; `/count` shows one at random.
pub const QUOTES: &[&str] = &[
    "A container is a promise that \"works on my machine\" travels with the code.",
    "Ship small, ship often: a tiny diff is the easiest rollback you will ever do.",
    "The image you tested is the image you deploy, or it is not the image you tested.",
    "Health checks are how a service tells the truth about itself at three in the morning.",
    "Pin your versions today so that next year's build still means something.",
    "A graceful shutdown is a courtesy to every request that trusted you.",
    "Replicas are cheap; state is not. Keep it in one place and guard it well.",
    "If the deploy needs a wiki page, the pipeline is not finished yet.",
    "Logs are letters to your future self: write them so they make sense out of context.",
    "Stateless containers come and go; the counter in Redis remembers them all.",
];

/// The template names the app needs; checked at startup so a broken template fails fast.
const TEMPLATES: &[&str] = &["index.html", "count.html", "about.html", "error.html"];

enum Source {
    Embedded(Environment<'static>),
    Disk(PathBuf),
}

/// Renders the site's pages.
pub struct Pages {
    source: Source,
    globals: Value,
    home: Bytes,
    about: Bytes,
    not_found: Bytes,
}

impl Pages {
    /// Loads the templates and renders the static pages; any template error is returned.
    pub fn new(config: &Config, static_version: &str) -> Result<Self, minijinja::Error> {
        let source = match &config.templates_dir {
            Some(dir) => Source::Disk(dir.clone()),
            None => {
                let mut env = Environment::new();
                minijinja_embed::load_templates!(&mut env);
                Source::Embedded(env)
            }
        };
        let globals = Value::from_serialize(context! {
            app_name => &config.app_name,
            replica => &config.replica_name,
            app_version => &config.version,
            static_version => static_version,
            github_url => &config.github_url,
            linkedin_url => &config.linkedin_url,
        });
        let mut pages = Pages {
            source,
            globals,
            home: Bytes::new(),
            about: Bytes::new(),
            not_found: Bytes::new(),
        };
        for name in TEMPLATES {
            pages.with_env(|env| env.get_template(name).map(|_| ()))?;
        }
        pages.home = Bytes::from(pages.render("index.html", context! {})?);
        pages.about = Bytes::from(pages.render("about.html", context! {})?);
        pages.not_found = Bytes::from(pages.render_error(
            404,
            "Page not found",
            "There is nothing at this address. Maybe it shipped somewhere else?",
        )?);
        Ok(pages)
    }

    fn with_env<T>(
        &self,
        f: impl FnOnce(&Environment<'_>) -> Result<T, minijinja::Error>,
    ) -> Result<T, minijinja::Error> {
        match &self.source {
            Source::Embedded(env) => f(env),
            Source::Disk(dir) => {
                let mut env = Environment::new();
                env.set_loader(minijinja::path_loader(dir));
                f(&env)
            }
        }
    }

    fn render(&self, name: &str, page: Value) -> Result<String, minijinja::Error> {
        let ctx = context! { ..page, ..self.globals.clone() };
        self.with_env(|env| env.get_template(name)?.render(&ctx))
    }

    fn is_live(&self) -> bool {
        matches!(self.source, Source::Disk(_))
    }

    pub fn home(&self) -> Result<Bytes, minijinja::Error> {
        if self.is_live() {
            return self.render("index.html", context! {}).map(Bytes::from);
        }
        Ok(self.home.clone())
    }

    pub fn about(&self) -> Result<Bytes, minijinja::Error> {
        if self.is_live() {
            return self.render("about.html", context! {}).map(Bytes::from);
        }
        Ok(self.about.clone())
    }

    pub fn not_found(&self) -> Result<Bytes, minijinja::Error> {
        if self.is_live() {
            return self
                .render_error(404, "Page not found", "There is nothing at this address.")
                .map(Bytes::from);
        }
        Ok(self.not_found.clone())
    }

    /// The `/count` page for a total of `visits`.
    pub fn count(&self, visits: i64) -> Result<Bytes, minijinja::Error> {
        let quote = QUOTES[rand::random_range(0..QUOTES.len())];
        self.render("count.html", context! { visits, quote })
            .map(Bytes::from)
    }

    /// A styled error page (404, 405, 503, 500).
    pub fn error(&self, status: u16, title: &str, detail: &str) -> Result<Bytes, minijinja::Error> {
        self.render_error(status, title, detail).map(Bytes::from)
    }

    fn render_error(
        &self,
        status: u16,
        title: &str,
        detail: &str,
    ) -> Result<String, minijinja::Error> {
        self.render("error.html", context! { status, title, detail })
    }
}
