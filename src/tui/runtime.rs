//! Carries out the app's [`Effect`]s: connects clouds and reads their
//! inventories off the UI task, starts the engine and forwards its events.
//! Answers come back as [`Msg`]s on one channel, so the loop never blocks.

use crate::cloud::{self, Cloud};
use crate::config::Config;
use crate::engine::link::RunLink;
use crate::engine::wire::ServerMessage;
use crate::engine::{self, Command, Event};
use crate::rehearsal::{self, RehearsalOptions};
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
    /// Secrets the operator typed, per cloud: the engine process needs them
    /// too (handed over through a pipe, see `cli::detach`).
    answers: HashMap<String, Vec<(String, Secret)>>,
    /// The executable that runs engines (this one unless set).
    engine_exe: Option<PathBuf>,
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
            answers: HashMap::new(),
            engine_exe: None,
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

    /// Runs engines with `exe` (tests that drive the console in-process).
    pub fn set_engine_exe(&mut self, exe: PathBuf) {
        self.engine_exe = Some(exe);
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
            } => {
                self.answers.insert(cloud.clone(), secrets.clone());
                self.connect(side, cloud, secrets)
            }
            Effect::StartRun(approved) => self.start_run(*approved),
            Effect::Engine(command) => {
                if let Some(commands) = &self.commands {
                    // A closed channel means the run already ended; nothing to do.
                    let _ = commands.send(command);
                }
            }
            Effect::Rehearse(plan) => self.rehearse(*plan),
            Effect::InspectGuests(plan) => self.inspect_guests(*plan),
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

    /// Boots the plan's boot disks off the UI task, telling the app as each
    /// boot starts and when all ended. The source is the connected cloud the
    /// plan was built from.
    fn rehearse(&self, plan: crate::plan::Plan) {
        let source = match self.clouds.lock() {
            Ok(clouds) => clouds.get(&plan.source.cloud).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&plan.source.cloud).cloned(),
        };
        let options = RehearsalOptions {
            expect: None,
            timeout: std::time::Duration::from_secs(rehearsal::DEFAULT_TIMEOUT_SECS),
            dir: self.state_dir.join("rehearsals"),
        };
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let items = plan.items.iter().map(|i| i.instance_id.clone()).collect();
            let booting = tx.clone();
            let on_boot = move |instance: &str, disk: &str| {
                // The loop may be gone (quitting): nobody to tell.
                let _ = booting.send(Msg::RehearsalBooting {
                    instance: instance.to_string(),
                    disk: disk.to_string(),
                });
            };
            let result = match source {
                None => Err(format!("{} is not connected", plan.source.cloud)),
                Some(cloud) => match cloud.source_role() {
                    Ok(source) => rehearsal::rehearse_plan(source, &plan, &options, &on_boot)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
            };
            let _ = tx.send(Msg::Rehearsed { items, result });
        });
    }

    /// Inspects the plan's guests off the UI task (libguestfs), as `plan`
    /// does, with both connected clouds the plan was built between.
    fn inspect_guests(&self, plan: crate::plan::Plan) {
        let cloud = |name: &str| match self.clouds.lock() {
            Ok(clouds) => clouds.get(name).cloned(),
            Err(poisoned) => poisoned.into_inner().get(name).cloned(),
        };
        let (source, target) = (cloud(&plan.source.cloud), cloud(&plan.target.cloud));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let items = plan.items.iter().map(|i| i.instance_id.clone()).collect();
            let cutover = plan.cutover.is_some();
            let result = match (source, target) {
                (Some(source), Some(target)) => {
                    match (source.source_role(), target.target_role()) {
                        (Ok(source), Ok(target)) => {
                            crate::preparation::plan_preparation(source, target, &plan, false)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
                    }
                }
                _ => Err("both clouds must be connected to inspect the guests".into()),
            };
            // The loop may be gone (quitting): nobody to tell.
            let _ = tx.send(Msg::GuestsInspected {
                items,
                cutover,
                result,
            });
        });
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
        // The run is an engine process of its own: the console is one of its
        // viewers, and closing it (or losing the SSH session) leaves the run going.
        let plan = approved.plan();
        // The approve screen checked both clouds as connected here; the
        // engine connects its own, with the same secrets.
        let connected = {
            let clouds = match self.clouds.lock() {
                Ok(clouds) => clouds,
                Err(poisoned) => poisoned.into_inner(),
            };
            clouds.contains_key(&plan.source.cloud) && clouds.contains_key(&plan.target.cloud)
        };
        if !connected {
            let _ = self.tx.send(Msg::RunStartFailed(
                "source or target cloud is not connected".into(),
            ));
            return;
        }
        let run_dir = engine::run_dir(&self.state_dir, &approved.hash().0);
        let plan_file = run_dir.join("plan.toml");
        let saved = crate::fsutil::create_private_dir_all(&run_dir)
            .map_err(|e| e.to_string())
            .and_then(|()| plan.save(&plan_file).map_err(|e| e.to_string()));
        if let Err(err) = saved {
            let _ = self.tx.send(Msg::RunStartFailed(format!(
                "cannot keep the approved plan in {}: {err}",
                plan_file.display()
            )));
            return;
        }
        let answers: Vec<(String, Secret)> = [&plan.source.cloud, &plan.target.cloud]
            .iter()
            .flat_map(|cloud| self.answers.get(*cloud).cloned().unwrap_or_default())
            .collect();
        let args = crate::cli::detach::EngineArgs {
            throttle: self.throttle,
            bandwidth: self.bandwidth,
            ..Default::default()
        };
        let config_file = self.config.file.clone();
        let exe = self.engine_exe.clone();
        let state_dir = self.state_dir.clone();
        let tx = self.tx.clone();
        let (command_tx, command_rx) = tokio::sync::mpsc::unbounded_channel();
        self.commands = Some(command_tx);
        tokio::spawn(async move {
            let launched = crate::cli::detach::spawn(
                exe.as_deref(),
                config_file.as_deref(),
                &state_dir,
                &plan_file,
                &run_dir,
                &args,
                &answers,
                "console",
            )
            .await;
            drop(answers);
            match launched {
                Ok(launched) => follow(launched.link, command_rx, tx).await,
                Err(err) => {
                    let _ = tx.send(Msg::RunStartFailed(format!("{err:#}")));
                }
            }
        });
    }

    /// Watches a run that is already going (`altishift attach`).
    pub fn attach(&mut self, link: RunLink) {
        let (command_tx, command_rx) = tokio::sync::mpsc::unbounded_channel();
        self.commands = Some(command_tx);
        tokio::spawn(follow(link, command_rx, self.tx.clone()));
    }
}

/// Forwards a run's events to the app and the app's commands to the run,
/// until the engine closes the stream.
async fn follow(
    mut link: RunLink,
    mut commands: UnboundedReceiver<Command>,
    tx: UnboundedSender<Msg>,
) {
    let mut finished = false;
    loop {
        tokio::select! {
            message = link.messages.recv() => match message {
                Some(ServerMessage::Event(timed)) => {
                    finished |= matches!(timed.event, Event::RunFinished { .. });
                    if tx.send(Msg::Engine(timed.event)).is_err() {
                        return;
                    }
                }
                Some(ServerMessage::Refused { reason, .. }) => {
                    let _ = tx.send(Msg::Refused(reason));
                }
                Some(_) => {}
                None => break,
            },
            command = commands.recv() => match command {
                // The link's writer is gone only with the engine: the
                // stream's end says so next.
                Some(command) => {
                    let _ = link.commands.send(command);
                }
                None => break,
            },
        }
    }
    let result = if finished {
        Ok(())
    } else {
        Err(format!(
            "the engine stopped before the run ended: see {}; `altishift apply` resumes",
            link.run_dir.join("engine.log").display()
        ))
    };
    let _ = tx.send(Msg::EngineDone(result));
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
        plans_guests: connected.as_source().is_some(),
    };
    match clouds.lock() {
        Ok(mut map) => map.insert(name.to_string(), connected),
        Err(poisoned) => poisoned.into_inner().insert(name.to_string(), connected),
    };
    Ok(loaded)
}

/// The answer for a provider's prompt label (see [`crate::secret::answer_for`]).
fn secret_for(label: &str, secrets: &[(String, Secret)]) -> Option<Secret> {
    crate::secret::answer_for(label, secrets)
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
