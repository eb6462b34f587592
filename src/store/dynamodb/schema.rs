//! Creates the table, its indexes and TTL when running against a local
//! endpoint (DynamoDB Local, moto). On AWS the SAM template owns the table;
//! keep the two in step (`docs/data-model.md` describes both).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::items::{
    ACTION_LOG, BY_SCORE, CONTACTS, CT_PK, CT_SK, DUE, DUE_PK, DUE_SK, LB_PK, LB_SK, LOG_PK, LOG_SK, PK, SK, TTL,
};
use crate::store::StoreError;

/// One global secondary index: name, keys and projection (`ALL` or `KEYS_ONLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexShape {
    pub name: &'static str,
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub projection: &'static str,
}

/// The table as the code needs it: the one description both `ensure_table`
/// and the test of `template.yaml` read, so the two cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableShape {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    /// Every key attribute (all strings), of the table and its indexes.
    pub attributes: &'static [&'static str],
    pub indexes: &'static [IndexShape],
    pub ttl_attribute: &'static str,
    pub stream_view: &'static str,
}

pub const TABLE: TableShape = TableShape {
    partition_key: PK,
    sort_key: SK,
    attributes: &[PK, SK, LB_PK, LB_SK, LOG_PK, LOG_SK, DUE_PK, DUE_SK, CT_PK, CT_SK],
    indexes: &[
        IndexShape { name: BY_SCORE, partition_key: LB_PK, sort_key: LB_SK, projection: "ALL" },
        IndexShape { name: ACTION_LOG, partition_key: LOG_PK, sort_key: LOG_SK, projection: "KEYS_ONLY" },
        IndexShape { name: DUE, partition_key: DUE_PK, sort_key: DUE_SK, projection: "KEYS_ONLY" },
        IndexShape { name: CONTACTS, partition_key: CT_PK, sort_key: CT_SK, projection: "KEYS_ONLY" },
    ],
    ttl_attribute: TTL,
    stream_view: "NEW_IMAGE",
};

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cannot describe the table: {e}"))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(build_error)
}

fn index(shape: &IndexShape) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(shape.name)
        .key_schema(key(shape.partition_key, KeyType::Hash)?)
        .key_schema(key(shape.sort_key, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::from(shape.projection)).build())
        .build()
        .map_err(build_error)
}

/// Creates `table` unless it exists. Returns whether it was created.
pub async fn ensure_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => return Ok(false),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())),
    }
    let mut create = client.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
    for &name in TABLE.attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        );
    }
    create =
        create.key_schema(key(TABLE.partition_key, KeyType::Hash)?).key_schema(key(TABLE.sort_key, KeyType::Range)?);
    for shape in TABLE.indexes {
        create = create.global_secondary_indexes(index(shape)?);
    }
    create = create.stream_specification(
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::from(TABLE.stream_view))
            .build()
            .map_err(build_error)?,
    );
    match create.send().await {
        Ok(_) => {}
        // Another process created it first.
        Err(e) if e.as_service_error().is_some_and(|s| s.code() == Some("ResourceInUseException")) => return Ok(false),
        Err(e) => return Err(StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TABLE.ttl_attribute)
                .enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
    Ok(true)
}
