//! The login page, with the first-run setup form while no administrator exists.

use maud::{html, Markup};

use crate::{field, layout, Viewer};

/// State of the login page.
#[derive(Debug, Clone, Default)]
pub struct LoginPage {
    /// No user exists yet: show the first-run setup form.
    pub setup_needed: bool,
    /// Pre-session CSRF token for the form.
    pub form_csrf: String,
    /// A message about the whole form (wrong password, rate limit…).
    pub error: Option<String>,
    /// Messages next to fields: (field name, message).
    pub field_errors: Vec<(String, String)>,
    /// The username typed, kept on failure.
    pub username: String,
    /// The password rule, written on the setup form.
    pub password_rule: String,
}

impl LoginPage {
    fn err(&self, name: &str) -> Option<&str> {
        self.field_errors
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, m)| m.as_str())
    }
}

/// `/login`: the setup form while no admin exists, then a plain login form.
pub fn login(p: &LoginPage) -> Markup {
    let title = if p.setup_needed {
        "First-run setup"
    } else {
        "Log in"
    };
    layout(
        title,
        &Viewer::default(),
        html! {
            section.card.narrow {
                h1 { (title) }
                @if let Some(e) = &p.error {
                    p.error.banner role="alert" { (e) }
                }
                @if p.setup_needed {
                    p {
                        "Welcome. Create the first administrator. The one-time setup token is in the server log and in "
                        code { "<data dir>/setup-token" } "."
                    }
                    form method="post" action="/setup" {
                        input type="hidden" name="csrf_token" value=(p.form_csrf);
                        (field("Setup token", "token", "password", "", p.err("token"), None, "off"))
                        (field("Username", "username", "text", &p.username, p.err("username"), None, "username"))
                        (field("Password", "password", "password", "", p.err("password"),
                            Some(&format!("Password rule: {}.", p.password_rule)), "new-password"))
                        button.primary type="submit" { "Create administrator" }
                    }
                } @else {
                    form method="post" action="/login" {
                        input type="hidden" name="csrf_token" value=(p.form_csrf);
                        (field("Username", "username", "text", &p.username, p.err("username"), None, "username"))
                        (field("Password", "password", "password", "", p.err("password"), None, "current-password"))
                        button.primary type="submit" { "Log in" }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::{Html, Selector};

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn setup_form_shows_rule_and_keeps_username_with_errors_beside_fields() {
        let page = login(&LoginPage {
            setup_needed: true,
            form_csrf: "abc".into(),
            field_errors: vec![("password".into(), "password is too short".into())],
            username: "admin<script>".into(),
            password_rule: "at least 12 characters".into(),
            ..Default::default()
        })
        .into_string();
        let doc = Html::parse_document(&page);
        assert_eq!(doc.select(&sel("form[action='/setup']")).count(), 1);
        let user = doc.select(&sel("input[name=username]")).next().unwrap();
        assert_eq!(user.value().attr("value"), Some("admin<script>"));
        assert!(!page.contains("admin<script>\""), "value must be escaped");
        let err = doc.select(&sel("#f-password-error")).next().unwrap();
        assert_eq!(err.text().collect::<String>(), "password is too short");
        let hint = doc.select(&sel("#f-password-hint")).next().unwrap();
        assert!(hint
            .text()
            .collect::<String>()
            .contains("at least 12 characters"));
        let csrf = doc.select(&sel("input[name=csrf_token]")).next().unwrap();
        assert_eq!(csrf.value().attr("value"), Some("abc"));
        // Every input but the hidden one has a label.
        for input in doc.select(&sel("input:not([type=hidden])")) {
            let id = input.value().attr("id").unwrap();
            assert_eq!(doc.select(&sel(&format!("label[for='{id}']"))).count(), 1);
        }
    }

    #[test]
    fn plain_login_after_setup() {
        let page = login(&LoginPage::default()).into_string();
        let doc = Html::parse_document(&page);
        assert_eq!(doc.select(&sel("form[action='/login']")).count(), 1);
        assert_eq!(doc.select(&sel("input[name=token]")).count(), 0);
    }
}
