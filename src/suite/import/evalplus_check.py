# EvalPlus differential testing (evalplus/eval/__init__.py and _special_oracle.py): the
# completion's outputs on base_input then plus_input must equal the reference solution's
# (within atol for floats, special oracles for a few tasks); an input may take max(4 s, 4x the
# reference's time) (EvalPlus's DEFAULT_MIN_TIME_LIMIT and DEFAULT_GT_TIME_LIMIT_FACTOR).
# Expects _EP_DATASET, _EP_TASK, _EP_ENTRY, _EP_ATOL, _EP_REFERENCE, _EP_INPUTS and
# _EP_CANDIDATE, defined just before this code.
import sys as _ep_sys

if hasattr(_ep_sys, "set_int_max_str_digits"):
    _ep_sys.set_int_max_str_digits(0)
import copy as _ep_copy
import json as _ep_json
import math as _ep_math
import signal as _ep_signal
import time as _ep_time

_EP_SET_EQ = (
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
)
_EP_NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")


def _ep_deserialize(task, inputs):
    if task in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579,
                596, 616, 630, 726, 740, 744, 809):
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if task in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
    if task in (75, 413, 444, 753):
        return [[[tuple(lst) for lst in inp[0]]] + [inp[1]] for inp in inputs]
    if task in (106, 750):
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if task == 115:
        return [[[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]]
                for inp in inputs]
    if task == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if task in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if task in (259, 401, 445):
        inputs = [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if task == 278:
        inputs = [[[tuple(item) if isinstance(item, list) else item for item in inp[0]]]
                  for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if task == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if task == 722:
        return [[{key: tuple(value) for key, value in inp[0].items()}] + inp[1:]
                for inp in inputs]
    if task == 252:
        return [[complex(inp[0])] for inp in inputs]
    if task in (580, 615, 791):
        def to_tuple(x):
            return tuple(to_tuple(i) for i in x) if isinstance(x, list) else x
        return [to_tuple(inp) for inp in inputs]
    return inputs


def _ep_is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    return False


def _ep_allclose(out, exp, atol):
    # numpy.allclose(out, exp, rtol=1e-07, atol=atol) without numpy
    if isinstance(exp, (list, tuple)):
        return (isinstance(out, (list, tuple)) and len(out) == len(exp)
                and all(_ep_allclose(o, e, atol) for o, e in zip(out, exp)))
    try:
        return bool(out == exp or abs(out - exp) <= atol + 1e-07 * abs(exp))
    except Exception:
        return False


def _ep_poly(xs, x):
    return sum(coeff * _ep_math.pow(x, i) for i, coeff in enumerate(xs))


def _ep_surface_area(base_edge, height):
    slant_height = _ep_math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 4 * (base_edge * slant_height) / 2)


def _ep_digit_distance_nums(num1, num2):
    a, b = str(num1), str(num2)
    n = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(n), b.zfill(n)))


class _EpTimeout(BaseException):
    pass


def _ep_alarm(signum, frame):
    raise _EpTimeout()


def _ep_matches(out, exp, inp, atol):
    # evalplus/eval/__init__.py unsafe_execute, special oracles included; returns the atol
    # the next input uses (EvalPlus keeps the 1e-6 it enforces for float outputs)
    exact = out == exp
    if _EP_DATASET == "mbpp":
        if _EP_ENTRY == "are_equivalent":
            exact = True
        elif _EP_ENTRY == "sum_div":
            exact = exact or out == 0
        elif _EP_ENTRY == "surface_Area":
            exact = exact or abs(out - _ep_surface_area(*inp)) <= atol
        elif _EP_ENTRY == "digit_distance_nums":
            exact = exact or out == _ep_digit_distance_nums(*inp)
        elif _EP_ENTRY in _EP_SET_EQ:
            exact = set(out) == set(exp)
        elif _EP_ENTRY in _EP_NOT_NONE:
            exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if _EP_DATASET == "humaneval" and _EP_ENTRY == "find_zero":
        assert abs(_ep_poly(*inp, out)) <= atol
        return atol
    if atol == 0 and _ep_is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        assert type(out) == type(exp)
        if isinstance(exp, (list, tuple)):
            assert len(out) == len(exp)
        assert _ep_allclose(out, exp, atol)
    else:
        assert exact
    return atol


def check(_ignored=None):
    # the function under test as the completion defined it (an entry point named `check`, as
    # Mbpp/56's, would otherwise be this function)
    candidate = _EP_CANDIDATE
    namespace = {}
    exec(_EP_REFERENCE, namespace)
    reference = namespace[_EP_ENTRY]
    atol = _EP_ATOL
    _ep_signal.signal(_ep_signal.SIGALRM, _ep_alarm)
    for stage, raw in _EP_INPUTS:
        inputs = _ep_json.loads(raw)
        if _EP_DATASET == "mbpp":
            inputs = _ep_deserialize(int(_EP_TASK.split("/")[-1]), inputs)
        for i, inp in enumerate(inputs):
            start = _ep_time.perf_counter()
            exp = reference(*_ep_copy.deepcopy(inp))
            limit = max(4.0, 4.0 * (_ep_time.perf_counter() - start))
            if _EP_DATASET == "mbpp" and _EP_ENTRY in _EP_NOT_NONE:
                exp = exp is not None
            _ep_signal.setitimer(_ep_signal.ITIMER_REAL, limit)
            try:
                out = candidate(*_ep_copy.deepcopy(inp))
            except _EpTimeout:
                raise AssertionError(f"{stage} input {i}: over the time limit of {limit:.1f} s")
            finally:
                _ep_signal.setitimer(_ep_signal.ITIMER_REAL, 0)
            try:
                atol = _ep_matches(out, exp, _ep_copy.deepcopy(inp), atol)
            except Exception:
                raise AssertionError(f"{stage} input {i}: wrong output") from None
