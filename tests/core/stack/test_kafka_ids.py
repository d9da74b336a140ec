from ordertrack.stack.kafka import _new_cluster_id


def test_cluster_ids_are_kafka_shaped_and_never_look_like_options():
    ids = {_new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
