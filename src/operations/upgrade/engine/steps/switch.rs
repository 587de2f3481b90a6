//! The switch step: the configured `nixos-rebuild switch` (on the host, or locally with
//! `--target-host`), its output streamed line by line.

use std::time::Duration;

use color_eyre::eyre::Result;
use tokio::sync::mpsc;

use crate::config::SwitchMode;
use crate::inventory::Host;
use crate::operations::upgrade::engine::Runner;
use crate::operations::upgrade::world::CommandSpec;
use crate::operations::upgrade::{PlanEntry, StepOutcome, UpgradeEvent};
use crate::probes::rebuild::{CommandVars, default_user};

impl Runner {
    /// Switch `host` to the plan's configuration.
    pub(in crate::operations::upgrade::engine) async fn switch(
        &mut self,
        entry: &PlanEntry,
        host: &Host,
    ) -> StepOutcome {
        let cmd = match self.switch_command(host) {
            Ok(c) => c,
            Err(message) => return StepOutcome::Failed { message },
        };
        self.emit(UpgradeEvent::Output {
            node: entry.node.clone(),
            line: format!("$ {}", cmd.text()),
        })
        .await;
        let timeout = self.s.switch_timeout;
        match self.exec_streamed(&entry.node, host, &cmd, timeout).await {
            Ok(Some(0)) => StepOutcome::ok(),
            Ok(Some(code)) => StepOutcome::Failed {
                message: format!("`{}` exited with status {code}", cmd.text()),
            },
            Ok(None) => StepOutcome::Failed {
                message: format!("`{}` was killed by a signal", cmd.text()),
            },
            Err(e) => StepOutcome::Failed {
                message: format!("`{}` failed: {e:#}", cmd.text()),
            },
        }
    }

    /// The configured switch command for `host` (`Err`: an inventory value it cannot carry).
    pub(in crate::operations::upgrade::engine) fn switch_command(
        &self,
        host: &Host,
    ) -> Result<CommandSpec, String> {
        match self.s.switch {
            SwitchMode::Remote => self.command(&self.s.switch_command.clone(), host, false),
            SwitchMode::Local => self.command(&self.s.local_switch_command.clone(), host, true),
        }
    }

    /// The command from `template` for `host` (`{flake}`, `{host}`, `{id}`, `{target}`): its
    /// inventory values checked first (a value a shell would interpret is refused, naming the
    /// host and field).
    pub(in crate::operations::upgrade::engine) fn command(
        &self,
        template: &str,
        host: &Host,
        local: bool,
    ) -> Result<CommandSpec, String> {
        let vars =
            CommandVars::new(&self.plan.flake, host, &default_user()).map_err(|e| e.to_string())?;
        let text = vars.fill(template);
        Ok(if local {
            CommandSpec::Local(text)
        } else {
            CommandSpec::Remote(text)
        })
    }

    /// Run a command, streaming its lines as `Output` events.
    pub(in crate::operations::upgrade::engine) async fn exec_streamed(
        &mut self,
        node: &str,
        host: &Host,
        cmd: &CommandSpec,
        timeout: Duration,
    ) -> Result<Option<u32>> {
        let hosts = self.w.write.hosts.clone();
        let (ltx, mut lrx) = mpsc::unbounded_channel::<String>();
        let fut = hosts.exec(host, cmd, timeout, ltx);
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(line) = lrx.recv() => {
                    self.emit(UpgradeEvent::Output { node: node.to_string(), line }).await;
                }
            }
        };
        while let Ok(line) = lrx.try_recv() {
            self.emit(UpgradeEvent::Output {
                node: node.to_string(),
                line,
            })
            .await;
        }
        result
    }
}
