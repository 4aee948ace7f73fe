//! Embeds the minijinja templates from the top-level `templates/` directory into the
//! binary, so the app needs no files at run time (TEMPLATES_DIR can override them).

fn main() {
    minijinja_embed::embed_templates!("../templates", &[".html"][..]);
}
