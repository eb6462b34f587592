//! Creates the table, its indexes and TTL when running against a local
//! endpoint (DynamoDB Local, moto). On AWS the SAM template owns the table;
//! keep the two in step (`docs/data-model.md` describes both).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::items::{ACTION_LOG, BY_SCORE, DUE, DUE_PK, DUE_SK, LB_PK, LB_SK, LOG_PK, LOG_SK, PK, SK, TTL};
use crate::store::StoreError;

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cannot describe the table: {e}"))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(build_error)
}

fn index(name: &str, pk: &str, sk: &str, projection: ProjectionType) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .projection(Projection::builder().projection_type(projection).build())
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
    for name in [PK, SK, LB_PK, LB_SK, LOG_PK, LOG_SK, DUE_PK, DUE_SK] {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        );
    }
    create = create
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index(BY_SCORE, LB_PK, LB_SK, ProjectionType::All)?)
        .global_secondary_indexes(index(ACTION_LOG, LOG_PK, LOG_SK, ProjectionType::KeysOnly)?)
        .global_secondary_indexes(index(DUE, DUE_PK, DUE_SK, ProjectionType::KeysOnly)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
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
            TimeToLiveSpecification::builder().attribute_name(TTL).enabled(true).build().map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))?;
    Ok(true)
}
