//! `template.yaml` against the code: the deployed table must be the table
//! the code creates locally (keys, indexes, projections, TTL, stream), and
//! every function must build a binary that exists.

use serde_yaml::Value;

use scorehook::store::dynamodb::schema::TABLE;

fn template() -> Value {
    let text = std::fs::read_to_string(format!("{}/template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn strings(list: &Value, field: &str) -> Vec<String> {
    list.as_sequence().unwrap().iter().map(|v| v[field].as_str().unwrap().to_owned()).collect()
}

/// (partition, sort) attribute names of a KeySchema list.
fn keys(schema: &Value) -> (String, String) {
    let find = |kind: &str| {
        schema.as_sequence().unwrap().iter().find(|k| k["KeyType"] == kind).unwrap()["AttributeName"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (find("HASH"), find("RANGE"))
}

#[test]
fn the_templates_table_is_the_one_the_code_creates() {
    let table = &template()["Resources"]["Table"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    let mut attributes = strings(&table["AttributeDefinitions"], "AttributeName");
    attributes.sort();
    let mut expected: Vec<String> = TABLE.attributes.iter().map(|a| a.to_string()).collect();
    expected.sort();
    assert_eq!(attributes, expected);
    assert!(table["AttributeDefinitions"].as_sequence().unwrap().iter().all(|a| a["AttributeType"] == "S"));
    assert_eq!(keys(&table["KeySchema"]), (TABLE.partition_key.to_owned(), TABLE.sort_key.to_owned()));

    let indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(indexes.len(), TABLE.indexes.len());
    for shape in TABLE.indexes {
        let index = indexes.iter().find(|i| i["IndexName"] == shape.name).unwrap_or_else(|| panic!("{}", shape.name));
        assert_eq!(
            keys(&index["KeySchema"]),
            (shape.partition_key.to_owned(), shape.sort_key.to_owned()),
            "{}",
            shape.name
        );
        assert_eq!(index["Projection"]["ProjectionType"], shape.projection, "{}", shape.name);
    }
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], TABLE.ttl_attribute);
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(table["StreamSpecification"]["StreamViewType"], TABLE.stream_view);
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
}

#[test]
fn every_function_builds_an_existing_binary_for_arm64() {
    let template = template();
    assert_eq!(template["Globals"]["Function"]["Runtime"], "provided.al2023");
    assert_eq!(template["Globals"]["Function"]["Architectures"][0], "arm64");
    let resources = template["Resources"].as_mapping().unwrap();
    let functions: Vec<&Value> = resources.values().filter(|r| r["Type"] == "AWS::Serverless::Function").collect();
    assert_eq!(functions.len(), 3);
    for function in functions {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let source = format!("{}/src/bin/{binary}.rs", env!("CARGO_MANIFEST_DIR"));
        assert!(std::path::Path::new(&source).exists(), "{binary} has no {source}");
    }
}

#[test]
fn the_function_url_exists_only_without_the_http_api_and_the_http_function_can_reserve_concurrency() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let url_parts: Vec<(&str, &Value)> = resources
        .iter()
        .map(|(name, resource)| (name.as_str().unwrap(), resource))
        .filter(|(_, r)| {
            let properties = &r["Properties"];
            r["Type"] == "AWS::Lambda::Url"
                || !properties["FunctionUrlAuthType"].is_null()
                || !properties["InvokedViaFunctionUrl"].is_null()
        })
        .collect();
    assert_eq!(url_parts.len(), 3, "the URL and its two permissions: {url_parts:?}");
    for (name, resource) in &url_parts {
        assert_eq!(resource["Condition"], "UseFunctionUrl", "{name}");
    }
    assert!(resources.values().all(|r| r["Properties"]["FunctionUrlConfig"].is_null()), "no unconditional URL");
    let condition = serde_yaml::to_string(&template["Conditions"]["UseFunctionUrl"]).unwrap();
    assert!(condition.contains("Not") && condition.contains("UseHttpApi"), "{condition}");
    let http = &template["Resources"]["HttpFunction"]["Properties"];
    let reserved = serde_yaml::to_string(&http["ReservedConcurrentExecutions"]).unwrap();
    assert!(reserved.contains("HttpReservedConcurrency"), "{reserved}");
}

#[test]
fn the_custom_metric_alarms_watch_metrics_the_code_emits_for_every_provider() {
    let template = template();
    let resources = &template["Resources"];
    let stat_of = |alarm: &str| -> Vec<Value> {
        resources[alarm]["Properties"]["Metrics"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|m| !m["MetricStat"].is_null())
            .map(|m| m["MetricStat"]["Metric"].clone())
            .collect()
    };
    let dead = stat_of("DeadActionAlarm");
    // Every provider label the metric takes, "unknown" (a tenant gone or unreadable) included.
    let providers = ["generic", "hubspot", "highlevel", "activecampaign", "bitrix24", "pipedrive", "unknown"];
    assert_eq!(dead.len(), providers.len(), "one series per provider");
    let sum = resources["DeadActionAlarm"]["Properties"]["Metrics"][0]["Expression"].as_str().unwrap().to_owned();
    assert!(providers.iter().all(|p| sum.contains(&format!("FILL({p}, 0)"))), "{sum}");
    assert!(
        template["Globals"]["Function"]["LoggingConfig"]["ApplicationLogLevel"].is_null(),
        "Lambda would drop the EMF lines (they have no level) below an application log level"
    );
    for provider in providers {
        let series = dead.iter().find(|m| m["Dimensions"][0]["Value"] == provider).expect(provider);
        assert_eq!(series["Namespace"], "scorehook");
        assert_eq!(series["MetricName"], scorehook::metrics::ACTIONS.name);
        assert_eq!(series["Dimensions"][1]["Name"], "outcome");
        assert_eq!(series["Dimensions"][1]["Value"], "dead");
    }
    let lag = stat_of("OutboxLagAlarm");
    assert_eq!(lag[0]["MetricName"], scorehook::metrics::OUTBOX_WAIT.name, "every read's age, not the last one's");
    for alarm in
        ["DeadLetterQueueAlarm", "TableThrottleAlarm", "HttpFunctionErrorsAlarm", "SweeperFunctionThrottlesAlarm"]
    {
        assert_eq!(resources[alarm]["Type"], "AWS::CloudWatch::Alarm", "{alarm}");
    }
}

#[test]
fn the_alert_secret_comes_from_ssm_and_never_sits_in_the_functions_configuration() {
    let template = template();
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(variables["SCOREHOOK_ALERT_SECRET"], "", "declared empty, for env.json only");
    let parameter = serde_yaml::to_string(&variables["SCOREHOOK_ALERT_SECRET_PARAMETER"]).unwrap();
    assert!(parameter.contains("AlertSecretParameter"), "{parameter}");
    assert!(template["Parameters"]["AlertSecret"].is_null(), "no parameter carries the secret itself");
    for function in ["ExecutorFunction", "SweeperFunction"] {
        let policies = serde_yaml::to_string(&template["Resources"][function]["Properties"]["Policies"]).unwrap();
        assert!(policies.contains("ssm:GetParameter") && policies.contains("AlertSecretParameter"), "{function}");
    }
}
