//! Everything a key can ask for. The names are the config's (`snake_case`); what an action
//! does depends on the layer it is bound in (`refresh` polls the sources on the dashboard,
//! recomputes the diff in the diff view, retries a failed step in the upgrade view).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    FocusNext,
    FocusPrev,
    FocusHosts,
    FocusNodes,
    FocusEtcd,
    FocusLonghorn,
    FocusMetrics,
    FocusLogs,
    FocusFindings,
    FocusRecovery,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    Filter,
    Help,
    Refresh,
    Diff,
    Export,
    Wrap,
    /// Sort the focused table by its next column (after the last: unsorted).
    Sort,
    /// Reverse the focused table's sort order.
    SortReverse,
    /// The upgrade view at narrow widths: the run or the live health column.
    Health,
    Cordon,
    Confirm,
    Upgrade,
    /// One node's maintenance: plan, then drain it (it asks once more).
    Drain,
    /// Start the planned rolling upgrade (it asks once more).
    Start,
    Pause,
    Abort,
    Skip,
    /// Resume the interrupted run (a new engine process; it asks first).
    ResumeRun,
    /// Abandon the interrupted run: undo its cordons (it asks first).
    AbandonRun,
    /// Text input: keep what was typed and close.
    Submit,
    /// Text input: empty it.
    Clear,
    Left,
    Right,
    LineStart,
    LineEnd,
    DeleteBack,
    DeleteForward,
}

impl Action {
    /// Every action, in the order error messages list them.
    pub const ALL: &'static [Action] = &[
        Action::Help,
        Action::Quit,
        Action::FocusNext,
        Action::FocusPrev,
        Action::FocusHosts,
        Action::FocusNodes,
        Action::FocusEtcd,
        Action::FocusLonghorn,
        Action::FocusMetrics,
        Action::FocusLogs,
        Action::FocusFindings,
        Action::FocusRecovery,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Open,
        Action::Back,
        Action::Filter,
        Action::Refresh,
        Action::Diff,
        Action::Export,
        Action::Wrap,
        Action::Sort,
        Action::SortReverse,
        Action::Health,
        Action::Cordon,
        Action::Confirm,
        Action::Upgrade,
        Action::Drain,
        Action::Start,
        Action::Pause,
        Action::Abort,
        Action::Skip,
        Action::ResumeRun,
        Action::AbandonRun,
        Action::Submit,
        Action::Clear,
        Action::Left,
        Action::Right,
        Action::LineStart,
        Action::LineEnd,
        Action::DeleteBack,
        Action::DeleteForward,
    ];

    /// The config's name of the action.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{self:?}"))
    }

    pub(super) fn parse(name: &str) -> Result<Action, String> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
            let names: Vec<String> = Action::ALL.iter().map(|a| a.name()).collect();
            format!(
                "\"{name}\" is not an action (actions: {}, or \"none\" to unbind)",
                names.join(", ")
            )
        })
    }
}
