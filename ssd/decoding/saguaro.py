"""Speculative speculative decoding (SSD) with the Saguaro optimisations, resident on the GPU.

Round T for each row (tokens ..., last at position n-1; its draft tokens d_1..d_K ready in the proposal buffers,
drawn from q, with the draft's logits after last, d_1, .., d_K):
1. Concurrently (one GPU: a second CUDA stream inside the same graph; CPU: one after the other):
   - the draft builds the cache for round T's outcomes: for k = 0..K, the top-F_k tokens t of its own distribution
     at draft position k (excluding d_{k+1}, which a rejection never emits), and for each (k, t) a branch that
     feeds [token at n+k-1, t] at positions n+k-1, n+k and drafts K tokens after it (geometric fan-out F_k, sum
     N <= budget B; `fanout.py`). A branch keeps only its own K+2 positions in its own draft KV slot and reads the
     row's prefix (positions < n+k-1) from the row's draft slot in place: branches share the prefix, nothing is
     copied to fork them (tree attention, `ssd.kernels.decode_attention`);
   - the target verifies [last, d_1..d_K] with `verification.verify` and the accepted tokens + bonus are emitted.
2. Commit: look the outcome (k, t) up in the fresh cache (tensor ops). Hit -> the branch's K draft tokens, their q
   and logits become the next proposal, and its K+2 KV positions are copied into the row's draft slot (the slot
   swap as a copy of K+2 positions, not of a slot). Miss -> the row is flagged; before the next round the backup
   speculator fills its proposal: the draft itself (`neural`, K+1 steps) when the batch has at most
   `neural_backup_max_batch` sequences, else `random`: K uniformly random tokens with a point-mass proposal
   q = one-hot, which the exact rule accepts with probability p(x) (never "iff x == argmax p"), plus one draft
   forward over them for the logits the next cache needs.
The host reads one small tensor per round (tokens, kept counts, done and miss flags) and replays the backup graph
only when a row missed; everything else is device work captured in one CUDA graph.

Saguaro sampling: every draft token (branch, neural backup) at draft index i is sampled from
q'_i proportional to q_i * (C on the draft's top-F_i tokens, 1 elsewhere), C in (0, 1]. The verifier is handed q',
so the output distribution stays exactly the target's; a rejection's residual max(0, p - q') then puts more mass on
the top-F tokens, which are the ones cached. C = 1 turns it off.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor

from ssd.decoding.base import RoundState
from ssd.decoding.fanout import geometric_fanout
from ssd.decoding.speculation_cache import SpeculationCache
from ssd.decoding.speculative import SpeculativeDecoding
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams
from ssd.engine.sequence import Sequence

BACKUPS = ("auto", "neural", "random")


class Saguaro(SpeculativeDecoding):
    """SSD: speculation cache keyed by (k, bonus), geometric fan-out, Saguaro sampling, batch-aware backup."""

    name = "ssd"
    lag = 0  # the host must know this round's misses before it starts the next
    timer_of = {"prepare": "draft", "build": "cache_build", "verify": "verify", "commit": "draft"}

    def __init__(self, target: ModelRunner | None, draft: ModelRunner, k: int = 4, budget: int = 16,
                 fanout: list[int] | None = None, acceptance_rate: float = 0.7, fanout_power: float = 1.0,
                 saguaro_c: float = 1.0, backup: str = "auto", neural_backup_max_batch: int = 8,
                 use_streams: bool = True, seed: int = 0, cuda_graphs: bool = True) -> None:
        super().__init__(target, draft, k, seed, cuda_graphs)
        if backup not in BACKUPS:
            raise ValueError(f"backup={backup!r}; expected one of {BACKUPS}")
        if not 0 < saguaro_c <= 1:
            raise ValueError(f"saguaro_c={saguaro_c} must be in (0, 1]")
        self.fanout = resolve_fanout(k, draft.vocab_size, budget, fanout, acceptance_rate, fanout_power)
        self.num_branches = sum(self.fanout)
        self.keys_k = torch.repeat_interleave(torch.arange(k + 1), torch.tensor(self.fanout)).to(self.device)
        self.saguaro_c, self.backup, self.neural_backup_max_batch = saguaro_c, backup, neural_backup_max_batch
        self.draft_stream = torch.cuda.Stream(self.device) if use_streams and self.device.type == "cuda" else None
        self.concurrent_build = self.draft_stream is not None

    @staticmethod
    def branch_count(k: int, vocab: int, budget: int = 16, fanout: list[int] | None = None,
                     acceptance_rate: float = 0.7, fanout_power: float = 1.0, **_: object) -> int:
        """N = sum F_k for these options (how many draft KV slots each sequence needs besides its own)."""
        return sum(resolve_fanout(k, vocab, budget, fanout, acceptance_rate, fanout_power))

    def lookahead(self) -> int:
        """A branch for outcome k=K drafts K tokens after the bonus: up to 2K+1 positions past the last token."""
        return 2 * self.k + 2

    def max_rows(self) -> int:
        rows = self.draft.num_slots // (1 + self.num_branches)
        return min(rows, self.target.num_slots) if self.target is not None else rows

    # state: each row b owns draft slot b and branch slots max_rows + b * N + j ----------------------------------
    def init_state(self, state: RoundState) -> None:
        super().init_state(state)
        rows, n, k, vocab = state.batch.rows, self.num_branches, self.k, self.vocab_size
        buf = state.buffers
        buf["branch_slots"] = self.scratch_slots(rows, n, scratch=self.draft.scratch_slot)
        buf["branch_before"] = torch.zeros((rows, n), dtype=torch.long, device=self.device)
        buf["branch_start"] = torch.zeros((rows, n), dtype=torch.long, device=self.device)
        buf["logits"] = torch.zeros((rows, k + 1, vocab), dtype=self.draft.cache.k[0].dtype, device=self.device)
        buf["accepted"] = torch.zeros(rows, dtype=torch.long, device=self.device)
        buf["bonus"] = torch.zeros(rows, dtype=torch.long, device=self.device)
        state.host["cache"] = SpeculationCache(self.keys_k, rows, k, vocab, buf["logits"].dtype,
                                               with_q=not state.params.greedy)
        state.extra["backup_neural"] = self.graph(lambda: self.backup_round(state, neural=True))
        state.extra["backup_random"] = self.graph(lambda: self.backup_round(state, neural=False))

    def prefill(self, seqs: list[Sequence], state: RoundState) -> None:
        super().prefill(seqs, state)
        rows, n, base = state.batch.rows, self.num_branches, self.max_rows()
        slots = state.buffers["branch_slots"]
        slots.fill_(self.draft.scratch_slot)
        real = len(seqs)
        slots[:real] = base + torch.arange(real * n, device=self.device).view(real, n)
        state.host["cache"].keys_tok.fill_(-1)
        missed = torch.arange(rows) < real  # the first proposal of every sequence comes from the backup
        state.host["missed"] = bool(missed.any())
        state.host["neural"] = self.backup == "neural" or (self.backup == "auto"
                                                           and real <= self.neural_backup_max_batch)
        state.batch.aux.copy_(missed)

    # one round ----------------------------------------------------------------------------------------------
    def round_pieces(self, state: RoundState) -> dict[str, Callable[[], None]]:
        return {"prepare": lambda: self.branch_inputs(state),
                "build": lambda: self.build_cache(state),
                "verify": lambda: self.verify_round(state),
                "commit": lambda: self.commit(state)}

    def whole_round(self, pieces: dict[str, Callable[[], None]]) -> Callable[[], None]:
        def run() -> None:
            pieces["prepare"]()
            if self.draft_stream is None:
                pieces["build"]()
                pieces["verify"]()
            else:  # the draft builds the cache on its own stream while the target verifies
                main = torch.cuda.current_stream(self.device)
                self.draft_stream.wait_stream(main)
                with torch.cuda.stream(self.draft_stream):
                    pieces["build"]()
                pieces["verify"]()
                main.wait_stream(self.draft_stream)
            pieces["commit"]()
        return run

    def run_round(self, state: RoundState) -> None:
        if state.host["missed"]:
            with self.telemetry.timer("backup_draft", self.stream()):
                state.extra["backup_neural" if state.host["neural"] else "backup_random"]()
        if not self.telemetry.timing:
            state.whole()
            return
        tel, main = self.telemetry, self.stream()
        before = dict(tel.timers)
        for name in ("prepare", "build", "verify", "commit"):
            on_draft = name == "build" and self.draft_stream is not None
            stream = self.draft_stream if on_draft else main
            if on_draft:
                stream.wait_stream(main)
            if name == "commit" and self.draft_stream is not None:
                main.wait_stream(self.draft_stream)  # the commit reads the cache the draft stream built
            with torch.cuda.stream(stream) if on_draft else nullcontext(), tel.timer(self.timer_of[name], stream):
                state.pieces[name]()
        if self.draft_stream is None:  # one CPU: what a concurrent draft would give, from the measured pieces
            spent = {name: tel.timers[name] - before.get(name, 0.0) for name in tel.timers}
            tel.async_round_s += (spent["backup_draft"] + spent["draft"]  # prepare + commit stay serial
                                  + max(spent["cache_build"], spent["verify"]))

    def on_output(self, state: RoundState, out: Tensor) -> None:
        state.host["missed"] = bool(out[:, -1].any())

    # the pieces ---------------------------------------------------------------------------------------------
    def branch_inputs(self, state: RoundState) -> None:
        """What the cache building reads, copied on the main stream before the verify changes the batch:
        the token before each branch's guess (R, N) and the branch's first position (R, N)."""
        batch, buf = state.batch, state.buffers
        last, _ = batch.last(1)
        before = torch.cat([last, buf["tokens"]], 1)  # token at draft index k (0 = last), (R, K+1)
        buf["branch_before"].copy_(before[:, self.keys_k])
        buf["branch_start"].copy_((batch.length[:, None] - 1 + self.keys_k[None]).clamp_max(self.draft.max_len - 2))

    def build_cache(self, state: RoundState) -> None:
        """Draft K tokens for every cached outcome (k, t) into the speculation cache (reads `branch_inputs`)."""
        buf, cache = state.buffers, state.host["cache"]
        rows, n, k = state.batch.rows, self.num_branches, self.k
        keys_tok = self.candidates(buf["tokens"], buf["logits"])  # (R, N)
        first = torch.stack([buf["branch_before"], keys_tok], -1).flatten(0, 1)  # (R*N, 2)
        start = buf["branch_start"].flatten()
        first_pos = torch.stack([start, start + 1], -1)
        e, qq, lg = self.draft_from(first, first_pos, buf["branch_slots"].flatten(), state.params, k + 1,
                                    self.reweight_for(state.params),
                                    prefix_slots=buf["draft_slots"].repeat_interleave(n), prefix_lens=start)
        cache.store(keys_tok, e.view(rows, n, k), None if qq is None else qq.view(rows, n, k, -1),
                    lg.view(rows, n, k + 1, -1))

    def verify_round(self, state: RoundState) -> None:
        buf = state.buffers
        accepted, bonus = self.verify(state, buf["tokens"], buf.get("q") if not state.params.greedy else None)
        buf["accepted"].copy_(accepted)
        buf["bonus"].copy_(bonus)
        self.emit(state, buf["tokens"], accepted, bonus)

    def commit(self, state: RoundState) -> None:
        """Look this round's outcome up in the cache it built; hits take their branch, misses are flagged."""
        batch, buf, cache = state.batch, state.buffers, state.host["cache"]
        active = ~batch.done
        hit, branch = cache.lookup(buf["accepted"], buf["bonus"])
        state.counters.record_lookup(hit, active)
        tokens, q, logits = cache.take(branch)
        buf["tokens"].copy_(torch.where(hit[:, None], tokens, buf["tokens"]))
        buf["logits"].copy_(torch.where(hit[:, None, None], logits, buf["logits"]))
        if q is not None:
            buf["q"].copy_(torch.where(hit[:, None, None], q, buf["q"]))
        rows = torch.arange(batch.rows, device=self.device)
        src = buf["branch_slots"][rows, branch]
        dst = torch.where(hit & active, buf["draft_slots"], torch.full_like(src, self.draft.scratch_slot))
        positions = (batch.length[:, None] - 2 + torch.arange(self.k + 2, device=self.device))
        positions = positions.clamp(0, self.draft.max_len - 1)
        for keys, values in zip(self.draft.cache.k, self.draft.cache.v, strict=True):
            keys[dst[:, None], :, positions] = keys[src[:, None], :, positions]
            values[dst[:, None], :, positions] = values[src[:, None], :, positions]
        batch.aux.copy_(~hit & active)

    def backup_round(self, state: RoundState, neural: bool) -> None:
        """Fill the proposal of every missed row (flagged in `batch.aux`) with the backup speculator's."""
        batch, buf = state.batch, state.buffers
        missed = batch.aux.bool() & ~batch.done
        state.counters.record_backup(missed, neural)
        first, first_pos = batch.last(2)
        slots = buf["draft_slots"]
        if neural:
            tokens, q, logits = self.draft_from(first, first_pos, slots, state.params, self.k + 1,
                                                self.reweight_for(state.params))
        else:  # a point-mass proposal: the exact rule needs q = one-hot (greedy verification needs no q)
            tokens = torch.randint(self.vocab_size, (batch.rows, self.k), generator=self.generator,
                                   device=self.device)
            q = None if state.params.greedy else torch.nn.functional.one_hot(tokens, self.vocab_size).float()
            inputs = torch.cat([first, tokens], 1)  # the draft's view of the random tokens, for the next cache
            positions = torch.cat([first_pos, first_pos[:, -1:] + 1 + torch.arange(self.k, device=self.device)], 1)
            logits = self.draft.forward(inputs, positions, slots)[:, 1:]
        buf["tokens"].copy_(torch.where(missed[:, None], tokens, buf["tokens"]))
        buf["logits"].copy_(torch.where(missed[:, None, None], logits, buf["logits"]))
        if q is not None:
            buf["q"].copy_(torch.where(missed[:, None, None], q, buf["q"]))
        batch.aux.zero_()

    def candidates(self, tokens: Tensor, logits: Tensor) -> Tensor:
        """(R, N) bonus-token guesses: for outcome k, the top-F_k draft tokens at position k+1 except d_{k+1}."""
        guesses = []
        for k, f in enumerate(self.fanout):
            scores = logits[:, k].float()
            if k < self.k:
                scores = scores.scatter(-1, tokens[:, k:k + 1], float("-inf"))
            guesses.append(scores.topk(f, dim=-1).indices)
        return torch.cat(guesses, 1)

    def reweight_for(self, params: SamplingParams):
        """The draft's reweighting for these settings: none when greedy (a one-hot stays one) or with C = 1."""
        return None if params.greedy or self.saguaro_c == 1.0 else self.reweight

    def reweight(self, logits: Tensor, probs: Tensor, i: int) -> Tensor:
        """Saguaro sampling at draft index i: probs * C on the top-F_i tokens of `logits`, renormalised."""
        if self.saguaro_c == 1.0:
            return probs
        top = logits.topk(self.fanout[i], dim=-1).indices
        weights = torch.ones_like(probs).scatter_(-1, top, self.saguaro_c)
        out = probs * weights
        return out / out.sum(-1, keepdim=True)


def resolve_fanout(k: int, vocab: int, budget: int, fanout: list[int] | None, acceptance_rate: float,
                   power: float) -> list[int]:
    """An explicit fan-out (checked) or the geometric one for (K, budget, acceptance_rate, power)."""
    if fanout is None:
        return geometric_fanout(k, budget, acceptance_rate, power, max_per_outcome=vocab - 1)
    fanout = [int(f) for f in fanout]
    if len(fanout) != k + 1 or min(fanout) < 1 or max(fanout) > vocab - 1:
        raise ValueError(f"fanout={fanout} must have K+1={k + 1} entries in [1, vocab-1={vocab - 1}]")
    return fanout
