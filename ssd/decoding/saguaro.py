"""Speculative speculative decoding (SSD) with the Saguaro optimisations.

Round T for each active sequence (tokens ..., last at position n-1):
1. Lookup: the outcome (k, t) of round T-1 in the speculation cache. Hit -> the next K draft tokens (and the
   distribution q' they were drawn from) are ready; the branch's draft KV slot becomes the sequence's. Miss (or
   the first round) -> backup speculator: the draft itself (`neural`, K+1 steps) when the active batch is at most
   `neural_backup_max_batch`, else `random`: K uniformly random tokens with a point-mass proposal q = one-hot,
   which the exact rule accepts with probability p(x) (never "iff x == argmax p").
2. Concurrently (one GPU: a second CUDA stream; CPU: one after the other, timed separately):
   - the draft builds the cache for round T's outcomes: for k = 0..K, the top-F_k tokens t of its own distribution
     at draft position k+1 (excluding the draft token there, which a rejection never emits), forks its KV slot,
     and drafts K tokens after [d_1..d_k, t] (geometric fan-out F_k, sum <= budget B; `fanout.py`);
   - the target verifies [last, d_1..d_K] with `verification.verify`.
3. Emit the accepted tokens + bonus; remember (k, bonus) for the next lookup.

Saguaro sampling: every draft token (branch, neural backup) at draft index i is sampled from
q'_i proportional to q_i * (C on the draft's top-F_i tokens, 1 elsewhere), C in (0, 1]. The verifier is handed q',
so the output distribution stays exactly the target's; a rejection's residual max(0, p - q') then puts more mass on
the top-F tokens, which are the ones cached. C = 1 turns it off.
"""

from __future__ import annotations

import torch
from torch import Tensor

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

    def __init__(self, target: ModelRunner | None, draft: ModelRunner, k: int = 4, budget: int = 16,
                 fanout: list[int] | None = None, acceptance_rate: float = 0.7, fanout_power: float = 1.0,
                 saguaro_c: float = 1.0, backup: str = "auto", neural_backup_max_batch: int = 8,
                 use_streams: bool = True, seed: int = 0) -> None:
        super().__init__(target, draft, k, seed)
        if backup not in BACKUPS:
            raise ValueError(f"backup={backup!r}; expected one of {BACKUPS}")
        if not 0 < saguaro_c <= 1:
            raise ValueError(f"saguaro_c={saguaro_c} must be in (0, 1]")
        self.fanout = resolve_fanout(k, draft.vocab_size, budget, fanout, acceptance_rate, fanout_power)
        self.num_branches = sum(self.fanout)
        self.keys_k = torch.repeat_interleave(torch.arange(k + 1), torch.tensor(self.fanout)).to(self.device)
        self.saguaro_c, self.backup, self.neural_backup_max_batch = saguaro_c, backup, neural_backup_max_batch
        self.cache = SpeculationCache(self.keys_k)
        self.use_streams = use_streams and self.device.type == "cuda"
        self.draft_stream = torch.cuda.Stream(self.device) if self.use_streams else None
        self.pending_logits: tuple[Tensor, ...] | None = None

    @staticmethod
    def branch_count(k: int, vocab: int, budget: int = 16, fanout: list[int] | None = None,
                     acceptance_rate: float = 0.7, fanout_power: float = 1.0, **_: object) -> int:
        """N = sum F_k for these options (how many draft KV slots each sequence needs besides its own)."""
        return sum(resolve_fanout(k, vocab, budget, fanout, acceptance_rate, fanout_power))

    def lookahead(self) -> int:
        """A branch for outcome k=K drafts K tokens after the bonus: up to 2K+1 positions past the last token."""
        return 2 * self.k + 2

    # slots: each sequence owns 1 + N draft slots (its own + one per branch) -------------------------------------
    def prefill(self, seqs: list[Sequence]) -> None:
        super().prefill(seqs)
        for seq in seqs:
            seq.draft_slots += [self.draft.slots.take() for _ in range(self.num_branches)]
        self.cache.clear()

    def release(self, seqs: list[Sequence]) -> None:
        self.cache.clear()
        super().release(seqs)

    # one round ---------------------------------------------------------------------------------------------
    def step(self, seqs: list[Sequence], params: SamplingParams) -> list[list[int]]:
        tel = self.telemetry
        before = dict(tel.timers)
        tokens, q, logits = self.lookup_or_backup(seqs, params)
        if self.use_streams:  # draft builds the cache on its own stream while the target verifies
            with tel.timer("verify"):
                self.draft_stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(self.draft_stream):
                    speculations = self.build_cache(seqs, tokens, logits, params)
                accepted, bonus = self.verify(seqs, tokens, q, params)
                torch.cuda.current_stream(self.device).wait_stream(self.draft_stream)
        else:
            with tel.timer("cache_build"):
                speculations = self.build_cache(seqs, tokens, logits, params)
            with tel.timer("verify"):
                accepted, bonus = self.verify(seqs, tokens, q, params)
        spent = {name: tel.timers[name] - before.get(name, 0.0) for name in tel.timers}
        tel.async_round_s += spent["backup_draft"] + max(spent["cache_build"], spent["verify"])
        return self.commit(seqs, tokens, speculations, accepted, bonus)

    def commit(self, seqs: list[Sequence], tokens: Tensor, speculations: tuple[Tensor, ...], accepted: Tensor,
               bonus: Tensor) -> list[list[int]]:
        """Store this round's speculations with its verified outcome; return each sequence's new tokens."""
        self.cache.store([s.seq_id for s in seqs], *speculations)
        self.cache.record_outcomes(accepted, bonus)
        return self.emit(tokens, accepted, bonus)

    def lookup_or_backup(self, seqs: list[Sequence], params: SamplingParams) -> tuple[Tensor, Tensor, Tensor]:
        """Draft tokens (B, K), their proposal q (B, K, V) and draft logits (B, K+1, V) for this round."""
        b, k, vocab = len(seqs), self.k, self.vocab_size
        tokens = torch.zeros((b, k), dtype=torch.long, device=self.device)
        q = torch.zeros((b, k, vocab), device=self.device)
        logits = torch.zeros((b, k + 1, vocab), device=self.device)
        cached, hit, branch, rows = self.cache.lookup([s.seq_id for s in seqs])
        if bool(hit.any()):
            tokens[hit], q[hit], logits[hit] = self.cache.take(rows[hit], branch[hit])
        hits, branches = hit.tolist(), branch.tolist()
        self.telemetry.cache_lookups += int(cached.sum())
        self.telemetry.cache_hits += sum(hits)
        for seq, is_hit, j in zip(seqs, hits, branches, strict=True):
            if is_hit:  # the branch's KV slot (prefix + bonus + its drafts) becomes the sequence's draft slot
                slots = seq.draft_slots
                slots[0], slots[1 + j] = slots[1 + j], slots[0]
        missed = [row for row, is_hit in enumerate(hits) if not is_hit]
        if missed:
            with self.telemetry.timer("backup_draft"):
                self.backup_speculation(seqs, missed, params, tokens, q, logits)
        return tokens, q, logits

    def backup_speculation(self, seqs: list[Sequence], rows: list[int], params: SamplingParams, tokens: Tensor,
                           q: Tensor, logits: Tensor) -> None:
        """Fill `rows` of tokens/q/logits with the backup speculator's proposal."""
        subset = [seqs[r] for r in rows]
        index = torch.tensor(rows, device=self.device)
        slots = torch.tensor([s.draft_slots[0] for s in subset], device=self.device)
        first, first_pos = self.catch_up_inputs(subset)
        use_neural = self.backup == "neural" or (self.backup == "auto" and len(seqs) <= self.neural_backup_max_batch)
        if use_neural:
            self.telemetry.backup_neural += len(rows)
            t, qq, lg = self.draft_from(first, first_pos, slots, params, self.k + 1, self.reweight)
        else:
            self.telemetry.backup_random += len(rows)
            vocab = self.vocab_size
            t = torch.randint(vocab, (len(rows), self.k), generator=self.generator, device=self.device)
            qq = torch.nn.functional.one_hot(t, vocab).float()
            lg = None
        tokens[index], q[index] = t, qq
        if lg is None:  # the draft's view of the random tokens, needed to build the cache; runs with the verify
            self.pending_logits = (index, first, first_pos, slots)
        else:
            logits[index] = lg

    def build_cache(self, seqs: list[Sequence], tokens: Tensor, logits: Tensor,
                    params: SamplingParams) -> tuple[Tensor, ...]:
        """Draft K tokens for every cached outcome (k, t): returns per-row keys_tok, tokens, q, logits."""
        if self.pending_logits is not None:
            index, first, first_pos, slots = self.pending_logits
            inputs = torch.cat([first, tokens[index]], 1)
            positions = first_pos[:, -1:] + torch.arange(self.k + 1, device=self.device)
            positions = torch.cat([first_pos[:, :1], positions], 1)
            logits[index] = self.draft.forward(inputs, positions, slots)[:, 1:]
            self.pending_logits = None
        b, n, k = len(seqs), self.num_branches, self.k
        keys_tok = self.candidates(tokens, logits)  # (B, N)
        main = torch.tensor([s.draft_slots[0] for s in seqs], device=self.device)
        branch_slots = torch.tensor([s.draft_slots[1:] for s in seqs], device=self.device)  # (B, N)
        self.draft.cache.copy_slot(main.repeat_interleave(n), branch_slots.flatten())
        length = torch.tensor([s.num_tokens for s in seqs], device=self.device)  # n: last token at n-1
        last = torch.tensor([s.token_ids[-1] for s in seqs], device=self.device)
        before = torch.cat([last[:, None], tokens], 1)  # token at draft index k (0 = last), (B, K+1)
        first = torch.stack([before[:, self.keys_k], keys_tok], -1).flatten(0, 1)  # (B*N, 2)
        start = (length[:, None] - 1 + self.keys_k[None]).flatten()
        first_pos = torch.stack([start, start + 1], -1)
        e, qq, lg = self.draft_from(first, first_pos, branch_slots.flatten(), params, k + 1, self.reweight)
        return keys_tok, e.view(b, n, k), qq.view(b, n, k, -1), lg.view(b, n, k + 1, -1)

    def candidates(self, tokens: Tensor, logits: Tensor) -> Tensor:
        """(B, N) bonus-token guesses: for outcome k, the top-F_k draft tokens at position k+1 except d_{k+1}."""
        guesses = []
        for k, f in enumerate(self.fanout):
            scores = logits[:, k].clone()
            if k < self.k:
                scores.scatter_(-1, tokens[:, k:k + 1], float("-inf"))
            guesses.append(scores.topk(f, dim=-1).indices)
        return torch.cat(guesses, 1)

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
