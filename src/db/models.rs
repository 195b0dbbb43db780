//! The model registry: trained forecasters, their documents, and which one is active.

use sqlx::Row;

use super::{Catalogue, CatalogueError, Result, new_id};

/// A registered model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    /// Registry id.
    pub id: String,
    /// Model name.
    pub name: String,
    /// Model version (its training time, epoch ms).
    pub version: i64,
    /// The model's JSON document, the same as its file under `models/`.
    pub document: String,
    /// Training time, epoch ms.
    pub trained_at: i64,
    /// Whether the forecaster uses it.
    pub active: bool,
}

impl ModelRecord {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<ModelRecord, sqlx::Error> {
        Ok(ModelRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            version: row.try_get("version")?,
            document: row.try_get("document")?,
            trained_at: row.try_get("trained_at")?,
            active: row.try_get::<i64, _>("active")? == 1,
        })
    }
}

const MODEL_COLUMNS: &str = "id, name, version, document, trained_at, active";

impl Catalogue {
    /// Registers a model document; with `activate`, it also becomes the active model in
    /// the same transaction. A model of the same name and version is a conflict.
    pub async fn register_model(
        &self,
        name: &str,
        version: i64,
        document: &str,
        trained_at: i64,
        activate: bool,
    ) -> Result<ModelRecord> {
        let mut tx = self.writes.begin().await?;
        if activate {
            sqlx::query("UPDATE models SET active = 0 WHERE active = 1")
                .execute(&mut *tx)
                .await?;
        }
        let sql = format!(
            "INSERT INTO models ({MODEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {MODEL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new_id())
            .bind(name)
            .bind(version)
            .bind(document)
            .bind(trained_at)
            .bind(i64::from(activate))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                CatalogueError::conflict_or(e, || {
                    format!("model {name} version {version} is registered already")
                })
            })?;
        tx.commit().await?;
        Ok(ModelRecord::from_row(&row)?)
    }

    /// Makes the model `id` the active one.
    pub async fn activate_model(&self, id: &str) -> Result<ModelRecord> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("UPDATE models SET active = 0 WHERE active = 1 AND id <> $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let sql = format!("UPDATE models SET active = 1 WHERE id = $1 RETURNING {MODEL_COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| CatalogueError::NotFound {
                kind: "model",
                id: id.into(),
            })?;
        tx.commit().await?;
        Ok(ModelRecord::from_row(&row)?)
    }

    /// The active model, if one is marked.
    pub async fn active_model(&self) -> Result<Option<ModelRecord>> {
        let sql = format!("SELECT {MODEL_COLUMNS} FROM models WHERE active = 1");
        let row = sqlx::query(&sql).fetch_optional(&self.reads).await?;
        Ok(row.as_ref().map(ModelRecord::from_row).transpose()?)
    }

    /// Registered models, newest version first, at most `limit`.
    pub async fn list_models(&self, limit: i64) -> Result<Vec<ModelRecord>> {
        let sql =
            format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY version DESC, id DESC LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(super::page_limit(limit))
            .fetch_all(&self.reads)
            .await?;
        Ok(rows
            .iter()
            .map(ModelRecord::from_row)
            .collect::<Result<_, sqlx::Error>>()?)
    }
}
