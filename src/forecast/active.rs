//! The model the forecaster uses now: the catalogue's active model, reloaded when
//! another one is activated, and never replaced by a document that fails its checks.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::db::{Catalogue, CatalogueError, ModelRecord};

use super::Model;

/// The active model, shared by the scheduled job and the API; cheap to read.
#[derive(Debug, Default)]
pub struct ActiveModel {
    current: RwLock<Option<(String, Arc<Model>)>>,
}

impl ActiveModel {
    /// The model in use, if any.
    pub fn get(&self) -> Option<Arc<Model>> {
        self.read().as_ref().map(|(_, model)| model.clone())
    }

    /// Follows the catalogue's active model: loads it when another one was activated
    /// since the last call. A document that fails its checks is logged and the model in
    /// use is kept. Returns the newly loaded model, if there is one.
    pub async fn refresh(
        &self,
        catalogue: &Catalogue,
    ) -> Result<Option<Arc<Model>>, CatalogueError> {
        let Some(record) = catalogue.active_model().await? else {
            return Ok(None);
        };
        if self.read().as_ref().is_some_and(|(id, _)| *id == record.id) {
            return Ok(None);
        }
        Ok(self.adopt(&record))
    }

    /// Makes `record` the model in use if its document passes the checks.
    fn adopt(&self, record: &ModelRecord) -> Option<Arc<Model>> {
        match Model::parse(&record.document, &format!("registry id {}", record.id)) {
            Ok(model) => {
                let model = Arc::new(model);
                tracing::info!(
                    model = %model.name,
                    version = model.version,
                    "forecast model loaded"
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    Some((record.id.clone(), model.clone()));
                Some(model)
            }
            Err(e) => {
                // Remember the id so that the same bad document is not reported every run.
                let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
                if let Some((id, _)) = current.as_mut() {
                    if *id != record.id {
                        tracing::error!(error = %e, "the active model in the catalogue is unusable; keeping the model in use");
                        *id = record.id.clone();
                    }
                } else {
                    tracing::error!(error = %e, "the active model in the catalogue is unusable; no forecasts until a valid one is activated");
                }
                None
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<(String, Arc<Model>)>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// When the catalogue has no active model, registers and activates the newest valid
/// model file in `dir` (the shipped default on a fresh start). Files that fail their
/// checks are logged and skipped. Several processes starting at once agree: only one
/// registration wins, the others find it active.
pub async fn activate_newest_file(catalogue: &Catalogue, dir: &Path) -> Result<(), CatalogueError> {
    if catalogue.active_model().await?.is_some() {
        return Ok(());
    }
    let Some(model) = newest_valid_model(dir) else {
        tracing::warn!(
            dir = %dir.display(),
            "no forecast model: proactive moves and predictions are off until one is trained (strata train-model)"
        );
        return Ok(());
    };
    match super::register(catalogue, &model, true).await {
        Ok(record) => {
            tracing::info!(model = %record.name, version = record.version, dir = %dir.display(), "activated the newest model file");
            Ok(())
        }
        Err(CatalogueError::Conflict(_)) => {
            // Registered before (or by a process starting alongside): activate that row
            // unless another model became active meanwhile.
            if catalogue.active_model().await?.is_none()
                && let Some(record) = catalogue
                    .list_models(crate::db::MAX_PAGE_SIZE)
                    .await?
                    .into_iter()
                    .find(|r| r.name == model.name && r.version == model.version)
            {
                catalogue.activate_model(&record.id).await?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The valid model with the highest version among `dir/*.json`.
fn newest_valid_model(dir: &Path) -> Option<Model> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the models directory");
            return None;
        }
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| match Model::load(&path) {
            Ok(model) => Some(model),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a model file");
                None
            }
        })
        .max_by_key(|model| model.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::model::toy_examples;

    fn trained(name: &str, version: i64) -> Model {
        Model::train(name, &toy_examples(100), 1, 0.2, version).unwrap()
    }

    #[test]
    fn the_newest_valid_file_wins_and_corrupt_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_valid_model(dir.path()), None);
        for model in [trained("old", 1), trained("new", 2)] {
            std::fs::write(
                dir.path().join(model.file_name()),
                serde_json::to_string(&model).unwrap(),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("zzz-9.json"), "{ truncated").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a model").unwrap();
        assert_eq!(newest_valid_model(dir.path()).unwrap().name, "new");
        assert_eq!(newest_valid_model(&dir.path().join("missing")), None);
    }
}
