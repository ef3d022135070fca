"""The checks of the graded exercises: a correct answer passes, each classic mistake is named,
an answer that is or calls the reference fails, hidden cases come from the seed."""

import importlib
import inspect
import json

import numpy as np
import pytest
import tensorflow as tf

from nbutils.lab import checks
from nbutils.lab.checks import EXERCISES, GRADED
from nbutils.lab.checks.core import decode, encode, references_withheld


def reference(name):
    return getattr(importlib.import_module(GRADED[name]), name)


def compile_copies() -> dict:
    """A correct answer per graded name that is not nbutils' object: the reference's source
    compiled anew, in course order, each calling the earlier copies (as in a notebook)."""
    copies: dict = {}
    for name, module in GRADED.items():
        namespace = {**vars(importlib.import_module(module)), **copies}
        exec(compile(inspect.getsource(reference(name)), f"<copy of {name}>", "exec"), namespace)
        copies[name] = namespace[name]
    return copies


COPIES = compile_copies()


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", list(GRADED))
def test_correct_answer_passes_visible_and_hidden_cases(name, capsys):
    for seed in (None, 3, 2**31 - 1):
        result = checks.CHECKS[name](COPIES[name], seed=seed)
        assert result.passed, (seed, result.message)
    assert capsys.readouterr().out.count("All tests passed") == 3


@pytest.mark.parametrize("name", list(GRADED))
def test_stub_fails_not_implemented(name, capsys):
    result = checks.CHECKS[name](stub)
    assert not result.passed and "not implemented yet" in result.message
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(GRADED))
def test_the_reference_or_a_wrapper_of_it_fails(name):
    ref = reference(name)
    code = ref.__code__
    result = checks.CHECKS[name](ref, seed=5)
    assert not result.passed and "is the reference" in result.message
    wrapper = lambda *args, **kwargs: ref(*args, **kwargs)  # noqa: E731
    result = checks.CHECKS[name](wrapper)
    assert not result.passed, result.message
    assert f"calls the reference {GRADED[name]}.{name}" in result.message
    assert ref.__code__ is code  # given back after the check


def test_an_answer_calling_another_graded_reference_fails():
    from nbutils.style import costs

    def compute_layer_style_cost(a_S, a_G):  # its own formula, nbutils' gram_matrix
        _, n_H, n_W, n_C = a_G.shape
        S, G = (costs.gram_matrix(tf.transpose(tf.reshape(a, [-1, n_C]))) for a in (a_S, a_G))
        return tf.reduce_sum(tf.square(S - G)) / (4 * n_C**2 * (n_H * n_W) ** 2)

    result = checks.check_compute_layer_style_cost(compute_layer_style_cost)
    assert "calls the reference nbutils.style.costs.gram_matrix" in result.message


def test_references_withheld_and_given_back():
    from nbutils.style import costs

    a = tf.ones((2, 3))
    with references_withheld():
        with pytest.raises(RuntimeError, match="withheld: nbutils.style.costs.gram_matrix"):
            costs.gram_matrix(a)
    np.testing.assert_allclose(costs.gram_matrix(a).numpy(), np.full((2, 2), 3.0))


@pytest.mark.parametrize("name", list(GRADED))
def test_hidden_cases_come_from_the_seed(name):
    cases = EXERCISES[name].cases

    def fingerprint(seed):
        return json.dumps([repr(args) + repr(kwargs) for _, args, kwargs in cases(seed)])

    assert fingerprint(None) == fingerprint(None) and fingerprint(7) == fingerprint(7)
    assert len({fingerprint(None), fingerprint(7), fingerprint(8)}) == 3
    assert len(cases(7)) > len(cases(None))


def swapped_total_cost(J_content, J_style, alpha=10, beta=40):
    return beta * J_content + alpha * J_style


def own_gram(A):
    return tf.matmul(A, A, transpose_b=True)


def layer_style_no_transpose(a_S, a_G):
    _, n_H, n_W, n_C = a_G.shape

    def gram(a):
        return own_gram(tf.reshape(a, [n_C, n_H * n_W]))

    return tf.reduce_sum(tf.square(gram(a_S) - gram(a_G))) / (4 * n_C**2 * (n_H * n_W) ** 2)


def layer_style_no_factor(a_S, a_G):
    n_C = a_G.shape[-1]
    S, G = (own_gram(tf.transpose(tf.reshape(a, [-1, n_C]))) for a in (a_S, a_G))
    return tf.reduce_sum(tf.square(S - G))


def content_without_four(content_output, generated_output):
    return tf.reduce_mean(tf.square(content_output[-1] - generated_output[-1]))


def triplet_max_of_sum(y_true, y_pred, alpha=0.2):
    a, p, n = y_pred
    basic = (tf.reduce_sum(tf.square(a - p), axis=-1) - tf.reduce_sum(tf.square(a - n), axis=-1)
             + alpha)
    return tf.maximum(tf.reduce_sum(basic), 0.0)


def triplet_unsquared(y_true, y_pred, alpha=0.2):
    a, p, n = y_pred
    basic = tf.norm(a - p, axis=-1) - tf.norm(a - n, axis=-1) + alpha
    return tf.reduce_sum(tf.maximum(basic, 0.0))


def triplet_axis0(y_true, y_pred, alpha=0.2):
    a, p, n = y_pred
    basic = tf.reduce_sum(tf.square(a - p), axis=0) - tf.reduce_sum(tf.square(a - n), axis=0)
    return tf.reduce_sum(tf.maximum(basic + alpha, 0.0))


def verify_wrong_side(image_path, identity, database, model=None, threshold=0.6):
    dist = float(np.linalg.norm(img_to_encoding(image_path, model) - database[identity]))
    return dist, dist > threshold


def who_is_it_no_none(image_path, database, model=None, threshold=0.6):
    encoding = img_to_encoding(image_path, model)
    dists = {name: float(np.linalg.norm(encoding - e)) for name, e in database.items()}
    identity = min(dists, key=dists.get)
    return dists[identity], identity


def img_to_encoding(image_path, model=None):  # replaced by the checks' stand-in
    raise AssertionError("the check must inject its own img_to_encoding")


def train_step_without_clip(vgg_model_outputs, a_C, a_S, optimizer, alpha=10, beta=40,
                            style_layers=(), return_all=False):
    content_cost, style_cost = COPIES["compute_content_cost"], COPIES["compute_style_cost"]

    @tf.function
    def train_step(generated_image):
        with tf.GradientTape() as tape:
            a_G = vgg_model_outputs(generated_image)
            J = alpha * content_cost(a_C, a_G) + beta * style_cost(a_S, a_G, style_layers)
        optimizer.apply_gradients([(tape.gradient(J, generated_image), generated_image)])
        return J

    return train_step


def gram_transposed(A):
    return tf.matmul(A, A, transpose_a=True)


def total_cost_vector(J_content, J_style, alpha=10, beta=40):
    return tf.stack([alpha * J_content, beta * J_style])


@pytest.mark.parametrize("name, fn, reason", [
    ("total_cost", swapped_total_cost, "alpha and beta swapped"),
    ("total_cost", total_cost_vector, "not a scalar"),
    ("compute_layer_style_cost", layer_style_no_transpose, "without a transpose"),
    ("compute_layer_style_cost", layer_style_no_factor, "forgot the normalisation factor"),
    ("compute_content_cost", content_without_four, "wrong normalisation"),
    ("gram_matrix", gram_transposed, "A^T A"),
    ("triplet_loss", triplet_max_of_sum, "max of the sum"),
    ("triplet_loss", triplet_unsquared, "SQUARED"),
    ("triplet_loss", triplet_axis0, "axis 0"),
    ("verify", verify_wrong_side, "threshold on the wrong side"),
    ("who_is_it", who_is_it_no_none, "must return None"),
    ("make_train_step", train_step_without_clip, "not clipped to [0, 1]"),
    ("gram_matrix", lambda A: A @ undefined_name, "NameError"),  # noqa: F821
])
def test_check_names_the_mistake(name, fn, reason, capsys):
    for seed in (None, 7):
        result = checks.CHECKS[name](fn, seed=seed)
        assert not result.passed
        assert reason in result.message, result.message
    assert reason in capsys.readouterr().out


def test_fake_encoder_restored():
    assert checks.check_verify(verify_wrong_side).passed is False
    with pytest.raises(AssertionError):
        img_to_encoding(np.zeros(128))


def test_outcomes_round_trip_and_bounds():
    value = (np.arange(6.0).reshape(2, 3), 0.5, True, "kian", None)
    back = decode(json.loads(json.dumps(encode(value))))
    np.testing.assert_array_equal(back[0], value[0])
    assert back[1:] == value[1:]
    for bad in ({"shape": [10**7], "data": []}, {"shape": [2], "data": [1.0]},
                {"shape": [-1], "data": []}, {"shape": [1], "data": ["x"]},
                {"tuple": [{"tuple": [{"tuple": [{"tuple": [{"tuple": [{"tuple": []}]}]}]}]}]},
                {"what": 1}, [1, 2]):
        with pytest.raises(ValueError):
            decode(bad)


def test_registry_one_check_per_graded_reference():
    assert list(GRADED) == list(checks.CHECKS) == list(EXERCISES)
    for name, module in GRADED.items():
        fn = reference(name)
        assert fn.__module__ == module and fn.__name__ == name
        assert checks.CHECKS[name] is getattr(checks, f"check_{name}")
        assert checks.reference_of(name) is fn
    assert GRADED["triplet_loss"] == "nbutils.triplet"
