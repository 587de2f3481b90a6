//! One command on one host: open a channel on the host's connection (reconnecting once when
//! the server closed an idle one), start the command, feed its stdin, pass its output on as it
//! arrives, and end it (kill on timeout) with its exit status.

use std::time::Duration;

use russh::{ChannelMsg, Sig};

use super::pool::SshPool;
use super::{ExitInfo, OutputChunk, SshError};
use crate::model::host::SshProblem;
use crate::sources::ssh::ssh_config::Target;

impl SshPool {
    pub(super) async fn exec(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        sink: &mut (dyn FnMut(OutputChunk) + Send),
    ) -> Result<ExitInfo, SshError> {
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| SshError::new(SshProblem::Other, "the SSH pool is shutting down"))?;
        let conn = self.conn(target);
        let _busy = conn.claim();
        let mut attempt = 0;
        let mut channel = loop {
            attempt += 1;
            let handle = conn
                .session(target, &self.settings, &self.passphrases)
                .await?;
            // A hung server would never confirm the channel: bound the wait.
            let opened =
                tokio::time::timeout(self.settings.connect_timeout, handle.channel_open_session())
                    .await
                    .unwrap_or(Err(russh::Error::ConnectionTimeout));
            match opened {
                Ok(ch) => break ch,
                Err(e) => {
                    // The server may have closed an idle connection: reconnect once.
                    conn.drop_session(&handle).await;
                    if attempt >= 2 {
                        return Err(SshError::new(
                            SshProblem::Unreachable,
                            format!("{}: cannot open a channel: {e}", target.display()),
                        ));
                    }
                }
            }
        };

        let work = async {
            channel.exec(true, command).await.map_err(|e| {
                SshError::new(
                    SshProblem::Unreachable,
                    format!("{}: cannot start command: {e}", target.display()),
                )
            })?;
            if let Some(input) = stdin {
                channel.data_bytes(input.to_vec()).await.map_err(|e| {
                    SshError::new(
                        SshProblem::Unreachable,
                        format!("{}: cannot send input: {e}", target.display()),
                    )
                })?;
            }
            if stdin.is_some() {
                let _ = channel.eof().await;
            }
            let mut exit = ExitInfo::default();
            let reader = &mut channel;
            // Read until the channel is gone: the exit status may come before the last data.
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => sink(OutputChunk::Stdout(data.to_vec())),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        sink(OutputChunk::Stderr(data.to_vec()))
                    }
                    ChannelMsg::ExitStatus { exit_status } => exit.exit_status = Some(exit_status),
                    ChannelMsg::ExitSignal {
                        signal_name,
                        error_message,
                        ..
                    } => {
                        let mut s = format!("{signal_name:?}");
                        if !error_message.is_empty() {
                            s.push_str(&format!(" ({error_message})"));
                        }
                        exit.exit_signal = Some(s);
                    }
                    ChannelMsg::Failure => {
                        return Err(SshError::new(
                            SshProblem::Other,
                            format!(
                                "{}: the server refused to run the command",
                                target.display()
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            Ok::<_, SshError>(exit)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(exit)) if exit.exit_status.is_some() || exit.exit_signal.is_some() => Ok(exit),
            Ok(Ok(_)) => {
                // No exit status: the connection died under the command.
                conn.drop_current().await;
                Err(SshError::new(
                    SshProblem::Unreachable,
                    format!(
                        "{}: connection lost while running `{}`",
                        target.display(),
                        short(command)
                    ),
                ))
            }
            Ok(Err(e)) => {
                conn.drop_current().await;
                Err(e)
            }
            Err(_) => {
                // Ask the server to kill the command, then close the channel (sshd then closes
                // the command's pipes).
                let _ = channel.signal(Sig::KILL).await;
                let _ = channel.close().await;
                conn.drop_current().await;
                Err(SshError::new(
                    SshProblem::Timeout,
                    format!(
                        "{}: `{}` did not finish within {} s",
                        target.display(),
                        short(command),
                        timeout.as_secs_f64()
                    ),
                ))
            }
        }
    }
}

fn short(command: &str) -> String {
    let first = command.lines().next().unwrap_or("");
    let mut s: String = first.chars().take(60).collect();
    if s.len() < command.len() {
        s.push('…');
    }
    s
}
