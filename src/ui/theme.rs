//! Themes: `themes/*.toml`, embedded in the binary so it works from anywhere.
//! `--theme NAME|PATH`; `NO_COLOR` turns every colour off (modifiers stay).

use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// Built-in themes: name → TOML text.
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// One style as written in a theme file (unknown keys are errors).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<Color>,
    bg: Option<Color>,
    #[serde(default)]
    add_modifier: Option<Modifier>,
    #[serde(default)]
    sub_modifier: Option<Modifier>,
}

impl From<StyleSpec> for Style {
    fn from(s: StyleSpec) -> Style {
        let mut st = Style::default();
        if let Some(c) = s.fg {
            st = st.fg(c);
        }
        if let Some(c) = s.bg {
            st = st.bg(c);
        }
        if let Some(m) = s.add_modifier {
            st = st.add_modifier(m);
        }
        if let Some(m) = s.sub_modifier {
            st = st.remove_modifier(m);
        }
        st
    }
}

macro_rules! theme {
    ($($name:ident),* $(,)?) => {
        /// Every style the UI uses, by role.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            $(pub $name: Style,)*
        }

        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Styles {
            $(#[serde(default)] $name: Option<StyleSpec>,)*
        }

        impl Theme {
            fn blank() -> Theme {
                Theme { $($name: Style::default(),)* }
            }

            fn overlay(&mut self, s: Styles) {
                $(if let Some(spec) = s.$name { self.$name = spec.into(); })*
            }

            /// The same theme without any colour (for `NO_COLOR`).
            pub fn monochrome(&self) -> Theme {
                let strip = |s: Style| Style { fg: None, bg: None, ..s };
                let mut t = Theme { $($name: strip(self.$name),)* };
                t.selected = t.selected.add_modifier(Modifier::REVERSED);
                t.key = t.key.add_modifier(Modifier::REVERSED);
                t.tab_active = t.tab_active.add_modifier(Modifier::REVERSED);
                t.filter = t.filter.add_modifier(Modifier::REVERSED);
                t.critical = t.critical.add_modifier(Modifier::BOLD);
                t
            }
        }
    };
}

theme!(
    base,
    header,
    header_title,
    badge,
    border,
    border_focused,
    title,
    title_focused,
    table_header,
    selected,
    ok,
    info,
    warning,
    critical,
    muted,
    key,
    key_desc,
    gauge,
    sparkline,
    filter,
    tab,
    tab_active,
    popup,
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    styles: Styles,
}

impl Default for Theme {
    fn default() -> Self {
        // The embedded default theme is tested to parse.
        let mut t = Theme::blank();
        if let Ok(f) = toml::from_str::<ThemeFile>(BUILTIN[0].1) {
            t.overlay(f.styles);
        }
        t
    }
}

impl Theme {
    /// Load a theme by built-in name, by name from `$XDG_CONFIG_HOME/homeinfra-tui/themes/`,
    /// or from a path. Styles the file leaves out come from the default theme.
    pub fn load(name_or_path: Option<&str>, no_color: bool) -> Result<Theme, String> {
        let name = name_or_path.unwrap_or("default");
        let (origin, text) = resolve(name)?;
        Theme::parse(&origin, &text, no_color)
    }

    /// A theme from the text of a theme file (`origin` names it in errors). Styles the file
    /// leaves out come from the default theme.
    pub fn parse(origin: &Path, text: &str, no_color: bool) -> Result<Theme, String> {
        let file: ThemeFile =
            toml::from_str(text).map_err(|e| crate::config::describe(origin, text, &e).0)?;
        let mut theme = Theme::default();
        theme.overlay(file.styles);
        Ok(if no_color { theme.monochrome() } else { theme })
    }
}

pub use crate::base::no_color_requested;

fn resolve(name: &str) -> Result<(PathBuf, String), String> {
    let looks_like_path = name.contains('/') || name.ends_with(".toml");
    if !looks_like_path {
        if let Some(dir) = crate::paths::config_home() {
            let p = dir
                .join("homeinfra-tui")
                .join("themes")
                .join(format!("{name}.toml"));
            if let Ok(text) = std::fs::read_to_string(&p) {
                return Ok((p, text));
            }
        }
        if let Some((n, text)) = BUILTIN.iter().find(|(n, _)| *n == name) {
            return Ok((
                PathBuf::from(format!("themes/{n}.toml")),
                (*text).to_string(),
            ));
        }
        let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown theme \"{name}\": built-in themes are {} (or give a path to a .toml file)",
            names.join(", ")
        ));
    }
    let p = Path::new(name);
    std::fs::read_to_string(p)
        .map(|t| (p.to_path_buf(), t))
        .map_err(|e| format!("{}: cannot read theme: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_completely() {
        for (name, text) in BUILTIN {
            let f: ThemeFile = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = f.styles;
            // every style is set in every built-in theme
            let all_set = [
                s.base,
                s.header,
                s.header_title,
                s.badge,
                s.border,
                s.border_focused,
                s.title,
                s.title_focused,
                s.table_header,
                s.selected,
                s.ok,
                s.info,
                s.warning,
                s.critical,
                s.muted,
                s.key,
                s.key_desc,
                s.gauge,
                s.sparkline,
                s.filter,
                s.tab,
                s.tab_active,
                s.popup,
            ]
            .iter()
            .all(Option::is_some);
            assert!(all_set, "{name} leaves a style unset");
            Theme::load(Some(name), false).unwrap();
        }
    }

    #[test]
    fn default_has_colours_and_no_color_strips_them() {
        let t = Theme::load(None, false).unwrap();
        assert_eq!(t.critical.fg, Some(Color::LightRed));
        let m = Theme::load(None, true).unwrap();
        assert_eq!(m.critical.fg, None);
        assert!(m.selected.add_modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn partial_theme_file_overlays_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.toml");
        std::fs::write(
            &p,
            "[styles]\nok = { fg = \"#00ff00\", add_modifier = \"BOLD | ITALIC\" }\n",
        )
        .unwrap();
        let t = Theme::load(p.to_str(), false).unwrap();
        assert_eq!(t.ok.fg, Some(Color::Rgb(0, 255, 0)));
        assert!(
            t.ok.add_modifier
                .contains(Modifier::BOLD | Modifier::ITALIC)
        );
        assert_eq!(t.critical, Theme::default().critical);
    }

    #[test]
    fn bad_theme_file_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(
            &p,
            "[styles]\nok = { fg = \"green\" }\nwarnign = { fg = \"red\" }\n",
        )
        .unwrap();
        let err = Theme::load(p.to_str(), false).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "{}:3:1: key \"styles.warnign\": unknown field `warnign`",
                p.display()
            )),
            "{err}"
        );
        std::fs::write(&p, "[styles]\nok = { fg = \"greenish\" }\n").unwrap();
        let err = Theme::load(p.to_str(), false).unwrap_err();
        assert!(err.contains("key \"styles.ok\""), "{err}");
    }

    #[test]
    fn unknown_name_lists_builtins() {
        let err = Theme::load(Some("neon"), false).unwrap_err();
        assert_eq!(
            err,
            "unknown theme \"neon\": built-in themes are default, light, high-contrast (or give a path to a .toml file)"
        );
        let err = Theme::load(Some("/nonexistent/x.toml"), false).unwrap_err();
        assert!(
            err.starts_with("/nonexistent/x.toml: cannot read theme:"),
            "{err}"
        );
    }
}
