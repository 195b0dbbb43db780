//! Runs the service's long-lived tasks and notices when one stops.
//!
//! A task that returns, fails or panics before shutdown is logged by name at once,
//! readiness reports it, and [`Supervisor::failure`] hands it to `serve`, which shuts
//! the service down and exits non-zero: a service that silently stops counting or
//! moving while it answers "ready" is the worst kind of failure for an operator.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

/// The long-lived tasks of one `serve`.
pub struct Supervisor {
    stop: CancellationToken,
    health: Arc<Health>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    failed: mpsc::UnboundedSender<anyhow::Error>,
    failures: mpsc::UnboundedReceiver<anyhow::Error>,
}

impl Supervisor {
    /// Tasks stop when `stop` is cancelled; until then, a task that ends is a failure.
    pub fn new(stop: CancellationToken, health: Arc<Health>) -> Supervisor {
        let (failed, failures) = mpsc::unbounded_channel();
        Supervisor {
            stop,
            health,
            tasks: Vec::new(),
            failed,
            failures,
        }
    }

    /// Runs `task` under the name `name`.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let (stop, health, failed) = (self.stop.clone(), self.health.clone(), self.failed.clone());
        let task = test_hook::panic_if_asked(name, task);
        let handle = tokio::spawn(async move {
            let why = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(Ok(())) if stop.is_cancelled() => return,
                Ok(Ok(())) => "ended".to_string(),
                Ok(Err(e)) => format!("failed: {}", crate::causes::one_line(&e)),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            if stop.is_cancelled() {
                tracing::error!(task = name, "{why} while shutting down");
                return;
            }
            tracing::error!(
                task = name,
                "{why}; the service is not ready and shuts down"
            );
            health.task_stopped(name, why.clone());
            let _ = failed.send(anyhow::anyhow!("task {name} {why}"));
        });
        self.tasks.push((name, handle));
    }

    /// Waits until a task stops before shutdown, and says which and why.
    pub async fn failure(&mut self) -> anyhow::Error {
        // The supervisor keeps a sender itself, so this waits until a task fails.
        self.failures
            .recv()
            .await
            .unwrap_or_else(|| anyhow::anyhow!("every task stopped"))
    }

    /// After shutdown began: waits for the task named `name` to finish.
    pub async fn join(&mut self, name: &str) {
        if let Some(at) = self.tasks.iter().position(|(n, _)| *n == name) {
            let (_, handle) = self.tasks.remove(at);
            let _ = handle.await;
        }
    }

    /// After shutdown began: waits for every task to finish.
    pub async fn join_all(self) {
        for (_, handle) in self.tasks {
            let _ = handle.await;
        }
    }
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Debug builds only: `STRATA_TEST_PANIC_TASK=<task>` makes that task panic a moment
/// after the start, so tests can see what a panicking task does to the service.
#[cfg(debug_assertions)]
mod test_hook {
    use std::time::Duration;

    pub fn panic_if_asked(
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let asked = std::env::var("STRATA_TEST_PANIC_TASK").is_ok_and(|t| t == name);
        async move {
            if asked {
                tokio::time::sleep(Duration::from_secs(1)).await;
                panic!("STRATA_TEST_PANIC_TASK asked the {name} task to panic");
            }
            task.await
        }
    }
}

#[cfg(not(debug_assertions))]
mod test_hook {
    pub fn panic_if_asked<F>(_name: &'static str, task: F) -> F {
        task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_is_a_failure_named_in_readiness() {
        let stop = CancellationToken::new();
        let health = Arc::new(Health::default());
        let mut supervisor = Supervisor::new(stop.clone(), health.clone());
        supervisor.spawn("steady", {
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                Ok(())
            }
        });
        supervisor.spawn("fragile", async { panic!("boom") });
        let failure = supervisor.failure().await.to_string();
        assert_eq!(failure, "task fragile panicked: boom");
        supervisor.spawn("quitter", async { Ok(()) });
        assert_eq!(supervisor.failure().await.to_string(), "task quitter ended");
        let stopped = health.stopped();
        assert_eq!(stopped.len(), 2, "{stopped:?}");
        // After shutdown, ending is what tasks are asked to do.
        stop.cancel();
        supervisor.join_all().await;
        assert_eq!(health.stopped().len(), 2);
    }
}
