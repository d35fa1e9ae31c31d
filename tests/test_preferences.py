"""Preference oracles and pairwise advantages (docs/algorithms.md "Advantages", Soft-Pair-GRPO)."""

import math

import pytest
import torch

from pairgrpo_rllib.core.advantages import group_advantages
from pairgrpo_rllib.core.preferences import (
    judge_preference_matrix,
    pairwise_advantages,
    preference_matrix,
    select_pairs,
)

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _reference_all_advantages(scores):
    """Slow loop: A_i = (1/(G-1)) sum_{j != i} sign(r_i - r_j)."""
    out = []
    for row in scores:
        g = len(row)
        out.append(
            [
                sum((row[i] > row[j]) - (row[i] < row[j]) for j in range(g) if j != i) / (g - 1)
                for i in range(g)
            ]
        )
    return out


# --- preference_matrix ------------------------------------------------------------------------


def test_deterministic_preference_matrix_hand_case():
    # r = [1, 3, 2, 3]: s_ij = sign(r_i - r_j); members 1 and 3 tie (0)
    s = preference_matrix(torch.tensor([[1.0, 3.0, 2.0, 3.0]]))
    expected = [
        [0.0, -1.0, -1.0, -1.0],
        [1.0, 0.0, 1.0, 0.0],
        [1.0, -1.0, 0.0, -1.0],
        [1.0, 0.0, 1.0, 0.0],
    ]
    assert s.tolist() == [expected]


@pytest.mark.parametrize("oracle", ["deterministic", "bradley_terry"])
def test_preference_matrix_antisymmetric_with_zero_diagonal(oracle):
    r = torch.randn(7, 5, generator=_gen(0), dtype=F64)
    s = preference_matrix(r, oracle, temperature=0.5, generator=_gen(1))
    assert s.shape == (7, 5, 5) and s.dtype == F64
    assert torch.equal(s, -s.transpose(-1, -2))
    assert torch.equal(torch.diagonal(s, dim1=-2, dim2=-1), torch.zeros(7, 5, dtype=F64))
    assert set(s.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_bradley_terry_labels_every_pair_including_ties():
    s = preference_matrix(torch.tensor([[1.0, 1.0, 1.0]]), "bradley_terry", generator=_gen(2))
    off_diag = s[0][~torch.eye(3, dtype=torch.bool)]
    assert off_diag.abs().min() == 1.0


def test_bradley_terry_tiny_temperature_equals_deterministic_for_distinct_scores():
    r = torch.randn(20, 6, generator=_gen(3), dtype=F64)
    bt = preference_matrix(r, "bradley_terry", temperature=1e-9, generator=_gen(4))
    assert torch.equal(bt, preference_matrix(r))


def test_bradley_terry_win_rate_is_sigmoid_of_score_gap():
    # r_0 - r_1 = 1, tau = 1: P(0 > 1) = sigmoid(1) = 0.731059
    r = torch.tensor([[1.0, 0.0]], dtype=F64).expand(20_000, 2)
    s = preference_matrix(r, "bradley_terry", temperature=1.0, generator=_gen(5))
    win_rate = float((s[:, 0, 1] > 0).double().mean())
    assert abs(win_rate - 0.731059) < 0.015
    # tau = 2: sigmoid(0.5) = 0.622459
    s2 = preference_matrix(r, "bradley_terry", temperature=2.0, generator=_gen(6))
    assert abs(float((s2[:, 0, 1] > 0).double().mean()) - 0.622459) < 0.015


def test_bradley_terry_is_reproducible_with_a_generator():
    r = torch.randn(4, 4, generator=_gen(7))
    a = preference_matrix(r, "bradley_terry", generator=_gen(8))
    b = preference_matrix(r, "bradley_terry", generator=_gen(8))
    assert torch.equal(a, b)


# --- judge oracle -----------------------------------------------------------------------------


def _longer_is_better(a, b):
    return 1.0 if len(a) > len(b) else (0.0 if len(a) < len(b) else 0.5)


def test_judge_preference_matrix_hand_case():
    groups = [["aa", "a", "aaa"], ["x", "yy", "z"]]
    s = judge_preference_matrix(groups, _longer_is_better)
    assert s.dtype == torch.float32
    # group 0: lengths [2, 1, 3]; group 1: lengths [1, 2, 1] (members 0 and 2 tie at 0.5 -> 0)
    assert s.tolist() == [
        [[0.0, 1.0, -1.0], [-1.0, 0.0, -1.0], [1.0, 1.0, 0.0]],
        [[0.0, -1.0, 0.0], [1.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
    ]
    # with a judge that is sure (0 or 1) sampling gives the same labels, except the 0.5 tie, which
    # sampling resolves one way or the other
    sampled = judge_preference_matrix(groups, _longer_is_better, sample=True, generator=_gen(9), dtype=F64)
    assert sampled.dtype == F64
    assert torch.equal(sampled[0], s[0].double())
    assert sampled[1, 0, 2].abs() == 1.0
    assert torch.equal(sampled, -sampled.transpose(-1, -2))


def test_judge_is_called_once_per_unordered_pair():
    calls = []

    def judge(a, b):
        calls.append((a, b))
        return 0.9

    s = judge_preference_matrix([[0, 1, 2, 3]], judge)
    assert sorted(calls) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    # every first-listed member wins: row sums [3, 1, -1, -3]
    assert s.sum(-1).tolist() == [[3.0, 1.0, -1.0, -3.0]]


def test_judge_sampled_rate_matches_probability():
    groups = [["a", "b"]] * 10_000
    s = judge_preference_matrix(groups, lambda a, b: 0.3, sample=True, generator=_gen(10))
    assert abs(float((s[:, 0, 1] > 0).double().mean()) - 0.3) < 0.015


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_judge_bad_output_raises(bad):
    with pytest.raises(ValueError, match=r"judge returned .* group 0, pair \(0, 1\)"):
        judge_preference_matrix([["a", "b"]], lambda a, b: bad)


def test_judge_bad_groups_raise():
    with pytest.raises(ValueError, match="groups is empty"):
        judge_preference_matrix([], _longer_is_better)
    with pytest.raises(ValueError, match="same size >= 2"):
        judge_preference_matrix([["a", "b"], ["a", "b", "c"]], _longer_is_better)
    with pytest.raises(ValueError, match="same size >= 2"):
        judge_preference_matrix([["a"]], _longer_is_better)


# --- select_pairs -----------------------------------------------------------------------------


def test_select_pairs_all_hand_case():
    # r = [1, 3, 2]: pairs (0,1) -> 1 wins, (0,2) -> 2 wins, (1,2) -> 1 wins
    pairs = select_pairs(preference_matrix(torch.tensor([[1.0, 3.0, 2.0]])), "all")
    assert pairs.dtype == torch.long
    assert pairs.tolist() == [[0, 1, 0], [0, 2, 0], [0, 1, 2]]


def test_select_pairs_all_drops_ties_and_indexes_groups():
    # group 0: r = [1, 1] tie -> no pair; group 1: r = [0, 2] -> (1, 1, 0)
    pairs = select_pairs(preference_matrix(torch.tensor([[1.0, 1.0], [0.0, 2.0]])), "all")
    assert pairs.tolist() == [[1, 1, 0]]


def test_best_worst_picks_top_and_bottom():
    r = torch.tensor([[2.0, 5.0, 3.0, 0.0], [1.0, -1.0, 4.0, 2.0]])
    adv, pairs = pairwise_advantages(preference_matrix(r), "best_worst", generator=_gen(11))
    assert pairs.tolist() == [[0, 1, 3], [1, 2, 1]]
    assert adv.tolist() == [[0.0, 1.0, 0.0, -1.0], [0.0, -1.0, 1.0, 0.0]]


def test_best_worst_breaks_ties_at_random():
    # r = [3, 3, 0]: both 0 and 1 are "best"; over seeds each is picked
    prefs = preference_matrix(torch.tensor([[3.0, 3.0, 0.0]]))
    winners = {int(select_pairs(prefs, "best_worst", generator=_gen(s))[0, 1]) for s in range(20)}
    assert winners == {0, 1}
    losers = {int(select_pairs(prefs, "best_worst", generator=_gen(s))[0, 2]) for s in range(20)}
    assert losers == {2}


def test_best_worst_all_tied_group_gives_no_pair():
    adv, pairs = pairwise_advantages(preference_matrix(torch.tensor([[1.0, 1.0, 1.0]])), "best_worst")
    assert pairs.shape == (0, 3)
    assert adv.tolist() == [[0.0, 0.0, 0.0]]


def test_best_worst_cyclic_tournament_still_gives_a_pair():
    # noisy labels 0 > 1, 1 > 2, 2 > 0: every Copeland score is 0. The best and the worst must be
    # two different members (a self-pair would be dropped and the group lost).
    prefs = torch.tensor([[[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]]])
    seen = set()
    for seed in range(20):
        adv, pairs = pairwise_advantages(prefs, "best_worst", generator=_gen(seed))
        assert pairs.shape == (1, 3)
        _, w, lo = pairs[0].tolist()
        assert w != lo and prefs[0, w, lo] == 1.0
        assert adv[0, w] == 1.0 and adv[0, lo] == -1.0 and adv.sum() == 0.0
        seen.add((w, lo))
    assert seen == {(0, 1), (1, 2), (2, 0)}


def test_best_worst_oriented_by_own_label():
    # a noisy label says 2 > 0 although 0 beats more members than 2 does
    prefs = torch.tensor(
        [[[0.0, 1.0, -1.0, 1.0], [-1.0, 0.0, 1.0, 1.0], [1.0, -1.0, 0.0, -1.0], [-1.0, -1.0, 1.0, 0.0]]]
    )
    # Copeland = row sums = [1, 1, -1, -1]: best in {0, 1}, worst in {2, 3}
    seen = set()
    for seed in range(30):
        pairs = select_pairs(prefs, "best_worst", generator=_gen(seed))
        g, w, lo = pairs[0].tolist()
        assert prefs[g, w, lo] == 1.0
        assert {w, lo} & {0, 1} and {w, lo} & {2, 3}
        seen.add((w, lo))
    assert (2, 0) in seen  # the "worst" member won its pair by its own label


def test_disjoint_pairs_are_disjoint_and_plus_minus_one():
    r = torch.randn(6, 6, generator=_gen(12), dtype=F64)
    adv, pairs = pairwise_advantages(preference_matrix(r), "disjoint", generator=_gen(13))
    assert pairs.shape == (18, 3)  # G/2 = 3 pairs per group, no ties
    assert torch.equal(adv.abs(), torch.ones_like(adv))
    torch.testing.assert_close(adv.sum(-1), torch.zeros(6, dtype=F64))
    for g in range(6):
        members = pairs[pairs[:, 0] == g][:, 1:].reshape(-1).tolist()
        assert sorted(members) == list(range(6))
    for g, w, lo in pairs.tolist():
        assert r[g, w] > r[g, lo]
        assert adv[g, w] == 1.0 and adv[g, lo] == -1.0


def test_disjoint_odd_group_leaves_one_member_out():
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    adv, pairs = pairwise_advantages(preference_matrix(r), "disjoint", generator=_gen(14))
    assert pairs.shape == (2, 3)
    assert sorted(adv[0].tolist()) == [-1.0, -1.0, 0.0, 1.0, 1.0]


def test_disjoint_is_reproducible_and_random():
    prefs = preference_matrix(torch.randn(1, 8, generator=_gen(15)))
    a = select_pairs(prefs, "disjoint", generator=_gen(16))
    assert torch.equal(a, select_pairs(prefs, "disjoint", generator=_gen(16)))
    different = [
        not torch.equal(a, select_pairs(prefs, "disjoint", generator=_gen(s))) for s in range(17, 27)
    ]
    assert any(different)


# --- pairwise_advantages ----------------------------------------------------------------------


def test_pairwise_all_hand_case_g3():
    # r = [1, 3, 2]: wins - losses = [-2, 2, 0], / (G-1) = 2 -> [-1, 1, 0]
    adv, pairs = pairwise_advantages(preference_matrix(torch.tensor([[1.0, 3.0, 2.0]])), "all")
    assert adv.tolist() == [[-1.0, 1.0, 0.0]]
    assert pairs.shape == (3, 3)


def test_pairwise_all_hand_case_g4_with_tie():
    # r = [4, 1, 1, 0]: member 0 beats 3 others -> 3/3 = 1; members 1 and 2: one loss, one tie,
    # one win -> 0/3 = 0; member 3 loses 3 -> -1
    adv, pairs = pairwise_advantages(preference_matrix(torch.tensor([[4.0, 1.0, 1.0, 0.0]])), "all")
    assert adv.tolist() == [[1.0, 0.0, 0.0, -1.0]]
    assert pairs.shape == (5, 3)  # 6 pairs minus the tie
    # r = [0, 5, 2, 3]: wins - losses = [-3, 3, -1, 1] -> / 3
    adv2, _ = pairwise_advantages(preference_matrix(torch.tensor([[0.0, 5.0, 2.0, 3.0]], dtype=F64)), "all")
    torch.testing.assert_close(adv2, torch.tensor([[-1.0, 1.0, -1 / 3, 1 / 3]], dtype=F64))


def test_pairwise_all_matches_python_loop():
    r = torch.randint(0, 4, (10, 5), generator=_gen(17)).double()  # integer scores: many ties
    adv, _ = pairwise_advantages(preference_matrix(r), "all")
    torch.testing.assert_close(adv, torch.tensor(_reference_all_advantages(r.tolist()), dtype=F64))


def test_pairwise_all_invariant_to_monotone_score_transform():
    # only the order matters, never the magnitudes
    r = torch.randn(5, 6, generator=_gen(18), dtype=F64)
    a, _ = pairwise_advantages(preference_matrix(r), "all")
    b, _ = pairwise_advantages(preference_matrix(torch.exp(3.0 * r) - 10.0), "all")
    assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["all", "best_worst", "disjoint"])
def test_g2_pairwise_equals_grpo_mean_std(mode):
    # Dyadic scores: GRPO's mean and std are exact in floating point, so A = +-1 exactly.
    # Rows: distinct, reversed, a tie (both 0), a tie at another value.
    r = torch.tensor([[1.0, 0.0], [-0.5, 2.25], [0.75, 0.75], [0.0, 0.0], [3.0, -1.0]], dtype=F64)
    grpo = group_advantages(r, "mean_std")
    adv, pairs = pairwise_advantages(preference_matrix(r), mode, generator=_gen(19))
    assert torch.equal(adv, grpo)
    sign = torch.sign(r[:, 0] - r[:, 1])
    assert torch.equal(adv, torch.stack([sign, -sign], dim=-1))
    assert adv[2].tolist() == [0.0, 0.0] and adv[3].tolist() == [0.0, 0.0]
    assert pairs.shape == (3, 3)  # the two ties give no pair


@pytest.mark.parametrize("mode", ["all", "best_worst", "disjoint"])
def test_g2_pairwise_equals_grpo_on_random_scores(mode):
    r = torch.randn(200, 2, generator=_gen(20), dtype=F64)
    adv, _ = pairwise_advantages(preference_matrix(r), mode, generator=_gen(21))
    torch.testing.assert_close(adv, group_advantages(r), atol=1e-9, rtol=0)


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_the_field():
    r = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="preference_oracle='judge'"):
        preference_matrix(r, "judge")
    with pytest.raises(ValueError, match="preference_temperature"):
        preference_matrix(r, "bradley_terry", temperature=0.0)
    with pytest.raises(ValueError, match="scores has shape"):
        preference_matrix(torch.zeros(3))
    prefs = preference_matrix(torch.randn(2, 3))
    with pytest.raises(ValueError, match="pairs='top'"):
        select_pairs(prefs, "top")
    with pytest.raises(ValueError, match="pairs='pairs'"):
        pairwise_advantages(prefs, "pairs")
    with pytest.raises(ValueError, match="prefs has shape"):
        select_pairs(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="prefs has shape"):
        select_pairs(torch.zeros(2, 1, 1))


def test_reference_loop_helper_sanity():
    # the loop itself on r = [1, 3, 2] -> [-1, 1, 0]
    assert _reference_all_advantages([[1, 3, 2]]) == [[-1.0, 1.0, 0.0]]
    assert math.isclose(_reference_all_advantages([[0, 5, 2, 3]])[0][2], -1 / 3)
