"""Tests of checkpoint_magic.pipelines.sample: Sample, DelayedSample, SampleSet, SampleBatch."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import checkpoint_magic.pipelines as mario
from checkpoint_magic.exceptions import InvalidArgumentError
from checkpoint_magic.pipelines.sample import Constant


class CountingLoader:
    """A picklable loader that counts its calls."""

    def __init__(self, value):
        self.value = value
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.value


# ------------------------------------------------------------------------------ Sample


def test_sample_repr_is_the_seeds():
    s = mario.Sample(np.zeros(2), offset=np.array([0]), key="0")
    assert repr(s) == "Sample(data=array([0., 0.]), offset=array([0]), key='0')"


def test_sample_copies_parent_metadata_then_overrides():
    parent = mario.Sample(np.zeros(2), key="0", subject="a", _private=1)
    child = mario.Sample(np.ones(3), parent=parent, key="1", extra=True)
    assert child.key == "1" and child.subject == "a" and child.extra is True
    assert np.array_equal(child.data, np.ones(3))  # data is never copied from the parent
    assert not hasattr(child, "_private")
    assert parent.key == "0" and not hasattr(parent, "extra")
    # the parent's metadata order comes first
    assert repr(child) == "Sample(data=array([1., 1., 1.]), key='1', subject='a', extra=True)"


@pytest.mark.parametrize("name", ["data", "samples"])
def test_sample_rejects_payload_names_as_metadata(name):
    with pytest.raises(InvalidArgumentError, match="payload"):
        mario.Sample(1, **{name: 2}) if name == "samples" else mario.DelayedSample(
            lambda: 1, **{name: 2}
        )


def test_sample_equality_compares_data_and_metadata():
    a = mario.Sample(np.arange(3), key="a")
    assert a == mario.Sample(np.arange(3), key="a")
    assert a != mario.Sample(np.arange(3), key="b")
    assert a != mario.Sample(np.arange(4), key="a")
    assert a != mario.Sample(np.arange(3), key="a", extra=1)
    assert a != mario.Sample(np.arange(3).reshape(3, 1), key="a")  # shape counts
    assert a != "Sample"


def test_sample_is_picklable():
    s = mario.Sample(np.arange(3), key="x", meta={"a": 1})
    assert pickle.loads(pickle.dumps(s)) == s


# ------------------------------------------------------------------------------ DelayedSample


def test_delayed_sample_loads_nothing_when_built_printed_copied_or_pickled():
    loader = CountingLoader(np.arange(3))
    annotations = CountingLoader({"eyes": (1, 2)})
    s = mario.DelayedSample(loader, key="k", delayed_attributes={"annotations": annotations})
    repr(s)
    copy.copy(s)
    payload = pickle.dumps(s)
    assert loader.calls == 0 and annotations.calls == 0
    assert repr(s) == "DelayedSample(key='k', delayed_attributes=['annotations'])"

    restored = pickle.loads(payload)
    assert restored.key == "k"
    assert np.array_equal(restored.data, np.arange(3))
    assert restored.annotations == {"eyes": (1, 2)}
    assert loader.calls == 0  # the restored sample used its own copy of the loader


def test_delayed_sample_loads_on_each_access():
    loader = CountingLoader([1, 2])
    s = mario.DelayedSample(loader, key="k")
    assert s.data == [1, 2] and s.data == [1, 2]
    assert loader.calls == 2
    assert s.load is loader


def test_delayed_sample_keeps_parent_delayed_attributes_delayed():
    annotations = CountingLoader("eyes")
    parent = mario.DelayedSample(
        CountingLoader(1), key="p", delayed_attributes={"annotations": annotations}
    )
    child = mario.DelayedSample(CountingLoader(2), parent=parent, key="c")
    assert annotations.calls == 0
    assert child.key == "c" and child.annotations == "eyes" and child.data == 2
    assert annotations.calls == 1
    # a plain Sample built from it loads the delayed metadata (it cannot stay delayed)
    plain = mario.Sample(3, parent=child)
    assert plain.annotations == "eyes" and plain.key == "c"


def test_delayed_sample_refuses_a_name_both_plain_and_delayed():
    # bob.pipelines raises ValueError here; the plain value used to win silently
    with pytest.raises(ValueError, match=r"\['a'\] given both"):
        mario.DelayedSample(lambda: 1, delayed_attributes={"a": lambda: "delayed"}, a="plain")
    # metadata may still override a *parent's* delayed attribute
    parent = mario.DelayedSample(lambda: 1, delayed_attributes={"a": lambda: "delayed"})
    child = mario.DelayedSample(lambda: 2, parent=parent, a="plain")
    assert child.a == "plain" and child.delayed_attributes == {}


def test_delayed_sample_attributes_copy_independently():
    s = mario.DelayedSample(
        lambda: 1, delayed_attributes={"a": lambda: "delayed", "b": lambda: "b"}
    )
    assert s.a == "delayed" and s.b == "b"
    t = copy.copy(s)
    t.b = "set"
    assert t.b == "set" and s.b == "b"  # setting on a copy does not touch the original
    with pytest.raises(AttributeError, match="load"):
        s.data = 3
    with pytest.raises(AttributeError):
        s.missing  # noqa: B018


def test_delayed_sample_requires_callable():
    with pytest.raises(InvalidArgumentError, match="callable"):
        mario.DelayedSample(np.zeros(2))


def test_delayed_sample_equals_the_sample_it_stands_for():
    s = mario.Sample(np.arange(3), key="a", subject="x")
    d = mario.DelayedSample(Constant(np.arange(3)), parent=s)
    assert d == s and s == d
    assert mario.sample_metadata(d) == {"key": "a", "subject": "x"}


# ------------------------------------------------------------------------------ SampleSet


def test_sample_set_is_a_mutable_sequence_with_metadata():
    a, b, c = (mario.Sample(i, key=str(i)) for i in range(3))
    sset = mario.SampleSet([a, b], key="set", subject="s1")
    assert len(sset) == 2 and sset[0] is a and list(sset) == [a, b]
    sset.append(c)
    sset.insert(0, c)
    del sset[0]
    sset[1] = mario.Sample(10, key="10")
    assert [s.key for s in sset] == ["0", "10", "2"]
    assert sset.key == "set" and sset.subject == "s1"
    assert (
        repr(mario.SampleSet([a], key="k"))
        == "SampleSet(samples=[Sample(data=0, key='0')], key='k')"
    )


def test_sample_set_copies_parent_metadata():
    parent = mario.SampleSet([], key="set", subject="s1")
    child = mario.SampleSet((s for s in [mario.Sample(1)]), parent=parent, key="other")
    assert child.key == "other" and child.subject == "s1" and len(child) == 1
    assert isinstance(child.samples, list)


def test_delayed_sample_set_loads_lazily_and_materializes_on_change():
    loader = CountingLoader([mario.Sample(1), mario.Sample(2)])
    dset = mario.DelayedSampleSet(loader, key="d")
    assert loader.calls == 0
    assert repr(dset) == "DelayedSampleSet(key='d')"
    assert len(dset) == 2 and dset[1].data == 2
    assert loader.calls == 2
    restored = pickle.loads(pickle.dumps(dset))
    assert restored.key == "d" and len(restored) == 2
    dset.append(mario.Sample(3))
    calls = loader.calls
    assert [s.data for s in dset] == [1, 2, 3]
    assert loader.calls == calls  # kept in memory once modified
    assert dset == mario.SampleSet([mario.Sample(1), mario.Sample(2), mario.Sample(3)], key="d")


# ------------------------------------------------------------------------------ SampleBatch


def test_sample_batch_is_an_array_view_of_one_attribute():
    samples = [mario.Sample(np.full(2, i), offset=i) for i in range(3)]
    batch = mario.SampleBatch(samples)
    assert len(batch) == 3
    assert np.array_equal(batch[2], [2, 2])
    assert np.array_equal(np.asarray(batch), [[0, 0], [1, 1], [2, 2]])
    assert np.asarray(batch, dtype=np.float32).dtype == np.float32
    assert np.array_equal(np.asarray(mario.SampleBatch(samples, "offset")), [0, 1, 2])
    assert len(batch[1:]) == 2 and isinstance(batch[1:], mario.SampleBatch)
    assert np.asarray(mario.SampleBatch([])).shape == (0,)


def test_sample_batch_refuses_ragged_data_and_no_copy():
    batch = mario.SampleBatch([mario.Sample(np.zeros(2)), mario.Sample(np.zeros(3))])
    with pytest.raises(ValueError, match="different shapes"):
        np.asarray(batch)
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # numpy 1 has no "never copy"
        with pytest.raises(ValueError):
            np.array(mario.SampleBatch([mario.Sample(np.zeros(2))]), copy=False)


def test_is_sample_helpers():
    assert mario.is_sample(mario.DelayedSample(lambda: 1))
    assert mario.is_sample_set(mario.DelayedSampleSet(list))
    assert not mario.is_sample(mario.SampleSet([]))
