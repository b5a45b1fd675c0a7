from {{ cookiecutter.package_name }} import schema


def test_feature_names_are_unique_and_split_by_kind() -> None:
    assert len(set(schema.FEATURE_NAMES)) == len(schema.FEATURES)
    assert set(schema.NUMERIC_FEATURES) | set(schema.CATEGORICAL_FEATURES) == set(
        schema.FEATURE_NAMES
    )
    assert schema.TARGET not in schema.FEATURE_NAMES


def test_categorical_features_declare_their_categories() -> None:
    for name in schema.CATEGORICAL_FEATURES:
        assert schema.FEATURES_BY_NAME[name].categories, name


def test_numeric_features_are_bounded() -> None:
    # Unbounded inputs let a request push the model into overflow (a NaN score).
    for name in schema.NUMERIC_FEATURES:
        feature = schema.FEATURES_BY_NAME[name]
        assert feature.minimum is not None and feature.maximum is not None, name
