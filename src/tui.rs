//! The terminal: setup, restore (always), and the event loop.

use color_eyre::eyre::{Result, eyre};

use crate::commands::Context;

pub async fn run_dashboard(_ctx: Context) -> Result<()> {
    Err(eyre!("dashboard not built yet"))
}
