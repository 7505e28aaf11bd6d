//! Carries out the app's [`Effect`]s: connects clouds and reads their
//! inventories off the UI task, starts the engine and forwards its events.
//! Answers come back as [`Msg`]s on one channel, so the loop never blocks.

use crate::cloud::{self, Cloud};
use crate::config::Config;
use crate::engine::{self, Command, EngineOptions};
use crate::secret::Secret;
use crate::tui::app::inventory::{LoadedCloud, SideId};
use crate::tui::app::{App, Effect, Msg};
use crate::units::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

type Clouds = Arc<Mutex<HashMap<String, Arc<dyn Cloud>>>>;

pub struct Runtime {
    config: Config,
    state_dir: PathBuf,
    throttle: Option<Bytes>,
    bandwidth: Option<Bytes>,
    clouds: Clouds,
    commands: Option<UnboundedSender<Command>>,
    tx: UnboundedSender<Msg>,
}

impl Runtime {
    pub fn new(
        config: Config,
        state_dir: PathBuf,
        throttle: Option<Bytes>,
    ) -> (Runtime, UnboundedReceiver<Msg>) {
        let (tx, rx) = unbounded_channel();
        let runtime = Runtime {
            config,
            state_dir,
            throttle,
            bandwidth: None,
            clouds: Arc::default(),
            commands: None,
            tx,
        };
        (runtime, rx)
    }

    /// The run-wide bandwidth budget a run starts with.
    pub fn with_bandwidth(self, bandwidth: Option<Bytes>) -> Runtime {
        Runtime { bandwidth, ..self }
    }

    /// A sender for messages from outside (tests, benches).
    pub fn sender(&self) -> UnboundedSender<Msg> {
        self.tx.clone()
    }

    pub fn engine_running(&self) -> bool {
        self.commands.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// Performs everything the app asked for since the last call.
    pub fn perform_all(&mut self, app: &mut App) {
        for effect in app.take_effects() {
            self.perform(effect, app);
        }
    }

    fn perform(&mut self, effect: Effect, app: &mut App) {
        match effect {
            Effect::Connect {
                side,
                cloud,
                secrets,
            } => self.connect(side, cloud, secrets),
            Effect::StartRun(approved) => self.start_run(*approved),
            Effect::Engine(command) => {
                if let Some(commands) = &self.commands {
                    // A closed channel means the run already ended; nothing to do.
                    let _ = commands.send(command);
                }
            }
            Effect::Shutdown => {
                if !self.shutdown() {
                    app.quit = true;
                }
            }
        }
    }

    /// Asks a running engine to stop at a consistent point. False when there
    /// is none.
    pub fn shutdown(&mut self) -> bool {
        match &self.commands {
            Some(commands) if !commands.is_closed() => commands.send(Command::Shutdown).is_ok(),
            _ => false,
        }
    }

    fn connect(&self, side: SideId, cloud: String, secrets: Vec<(String, Secret)>) {
        let config = self.config.clone();
        let clouds = self.clouds.clone();
        let tx = self.tx.clone();
        let handle = tokio::runtime::Handle::current();
        // `connect` borrows a non-Send prompter across awaits, so it runs on
        // its own thread, driven by the shared runtime's reactor.
        let spawned = std::thread::Builder::new()
            .name(format!("connect-{cloud}"))
            .spawn(move || {
                let result = handle.block_on(connect_and_list(&config, &cloud, secrets, &clouds));
                // The loop may be gone (quitting): nobody to tell.
                let _ = tx.send(Msg::Loaded {
                    side,
                    cloud,
                    result: result.map(Box::new),
                });
            });
        if let Err(err) = spawned {
            let _ = self.tx.send(Msg::Loaded {
                side,
                cloud: String::new(),
                result: Err(format!("cannot start a thread: {err}")),
            });
        }
    }

    fn start_run(&mut self, approved: crate::plan::Approved) {
        // Signatures are made with `approve --sign` and checked by `apply`:
        // a config that asks for them is never run from a typed hash alone.
        if let Some(policy) = &self.config.approval
            && policy.required_signers() > 0
        {
            let _ = self.tx.send(Msg::RunStartFailed(format!(
                "this config requires {} signed approval(s): save the plan, sign it with `altishift approve PLAN --sign KEY`, then `altishift apply PLAN`",
                policy.required_signers()
            )));
            return;
        }
        let plan = approved.plan();
        let (source, target) = {
            let clouds = match self.clouds.lock() {
                Ok(clouds) => clouds,
                Err(poisoned) => poisoned.into_inner(),
            };
            (
                clouds.get(&plan.source.cloud).cloned(),
                clouds.get(&plan.target.cloud).cloned(),
            )
        };
        let (Some(source), Some(target)) = (source, target) else {
            let _ = self.tx.send(Msg::RunStartFailed(
                "source or target cloud is not connected".into(),
            ));
            return;
        };
        let options = EngineOptions {
            throttle: self.throttle,
            bandwidth: self.bandwidth,
            ..EngineOptions::default()
        };
        match engine::start(approved, source, target, &self.state_dir, options) {
            Ok(mut handle) => {
                self.commands = Some(handle.commands.clone());
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    while let Some(event) = handle.events.recv().await {
                        if tx.send(Msg::Engine(event)).is_err() {
                            break;
                        }
                    }
                    let result = match handle.done.await {
                        Ok(Ok(_outcome)) => Ok(()),
                        Ok(Err(err)) => Err(err.to_string()),
                        Err(join) => Err(format!("engine task ended abnormally: {join}")),
                    };
                    let _ = tx.send(Msg::EngineDone(result));
                });
            }
            Err(err) => {
                let _ = self.tx.send(Msg::RunStartFailed(err.to_string()));
            }
        }
    }
}

async fn connect_and_list(
    config: &Config,
    name: &str,
    secrets: Vec<(String, Secret)>,
    clouds: &Clouds,
) -> Result<LoadedCloud, String> {
    // Providers ask by a label naming the secret ("staging API key").
    let mut prompter = |label: &str| secret_for(label, &secrets);
    let connected = cloud::connect(config, name, &mut prompter)
        .await
        .map_err(|e| e.to_string())?;
    let inventory = connected.inventory().await.map_err(|e| e.to_string())?;
    let account = connected.account().await.map_err(|e| e.to_string())?;
    let fingerprint = crate::plan::trust::CloudFingerprint::of_cloud(config, name, account)
        .map_err(|e| e.to_string())?;
    let loaded = LoadedCloud {
        provider: connected.provider().to_string(),
        jurisdiction: connected.jurisdiction(),
        inventory,
        fingerprint,
    };
    match clouds.lock() {
        Ok(mut map) => map.insert(name.to_string(), connected),
        Err(poisoned) => poisoned.into_inner().insert(name.to_string(), connected),
    };
    Ok(loaded)
}

/// The answer for a provider's prompt label: the profile field whose words
/// the label contains (`secret_key` answers "staging secret key").
fn secret_for(label: &str, secrets: &[(String, Secret)]) -> Option<Secret> {
    let label = label.to_lowercase().replace('_', " ");
    secrets
        .iter()
        .find(|(field, _)| label.contains(&field.replace('_', " ")))
        .map(|(_, secret)| secret.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_labels_find_their_profile_field() {
        let secrets = vec![
            ("api_key".to_string(), Secret::new("a".into())),
            ("secret_key".to_string(), Secret::new("s".into())),
            ("token".to_string(), Secret::new("t".into())),
        ];
        let answer = |label: &str| secret_for(label, &secrets).map(|s| s.expose().to_string());
        assert_eq!(answer("staging API key").as_deref(), Some("a"));
        assert_eq!(answer("staging secret key").as_deref(), Some("s"));
        assert_eq!(answer("do Spaces secret_key").as_deref(), Some("s"));
        assert_eq!(answer("do DigitalOcean token").as_deref(), Some("t"));
        assert_eq!(answer("something else"), None);
    }
}
