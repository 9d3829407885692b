"""SSD with the draft on a device of its own: two processes, torch.distributed, launched by torchrun.

    torchrun --nproc_per_node=2 -m ssd.generate runtime.layout=distributed model=path model.path=... \\
        model.draft_path=...

Rank 0 holds the target and verifies; rank 1 holds the draft, the speculation cache and the backup speculator
(a `Saguaro` strategy without a target). Per round, for the B active sequences:

    rank 1: propose (cache lookup of the last outcome, or backup) --send tokens (B,K), q (B,K,V)--> rank 0
    rank 1: build the speculation cache for this round's outcomes      | rank 0: verify (target forward + rule)
    rank 1: <--recv outcome (accepted (B,), bonus (B,))-- rank 0
    both:   append the same tokens with the same stop rules, so both keep identical sequence states.

The cache building overlaps the verify because it runs in the other process (on GPUs: another GPU, NCCL; on the
CPU: gloo, used by the tests). Rank 0's telemetry counts the time it waits for a proposal as `draft` (the drafting
latency it could not hide); rank 1 sends its cache hit counts at the end. Each process seeds its own generator:
the draft's and the verifier's random numbers are independent, which is all exactness needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist

from ssd.decoding.base import Strategy
from ssd.decoding.saguaro import Saguaro
from ssd.decoding.speculative import SpeculativeDecoding
from ssd.engine.model_runner import ModelRunner
from ssd.engine.sampler import SamplingParams
from ssd.engine.sequence import Sequence
from ssd.models.loading import load_model

TARGET_RANK, DRAFT_RANK = 0, 1


def init_process_group(device: str, init_method: str | None = None, rank: int | None = None,
                       world_size: int | None = None) -> int:
    """Join the 2-process group (env:// from torchrun unless `init_method`); returns this process's rank."""
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        explicit = {} if init_method is None else {"init_method": init_method, "rank": rank,
                                                   "world_size": world_size}
        dist.init_process_group(backend, **explicit)
    if dist.get_world_size() != 2:
        raise RuntimeError(f"the distributed layout needs exactly 2 processes (target, draft), got "
                           f"{dist.get_world_size()}; launch with torchrun --nproc_per_node=2")
    return dist.get_rank()


def generate_distributed(target_path: str | Path, draft_path: str | Path, prompts: list[list[int]],
                         params: SamplingParams, k: int = 4, device: str = "cpu", dtype: torch.dtype = torch.float32,
                         max_len: int = 1024, seed: int = 0, on_tokens=None, triton_kernels: bool = False,
                         cuda_graphs: bool = True,
                         **ssd_options) -> tuple[list[Sequence], dict] | None:
    """Run on both ranks; rank 0 returns (finished sequences, telemetry summary), rank 1 returns None."""
    rank = dist.get_rank()
    if device.startswith("cuda"):
        device = f"cuda:{rank}"
        torch.cuda.set_device(device)
    hf_config = json.loads((Path(target_path) / "config.json").read_text())
    eos = hf_config.get("eos_token_id")
    eos = [] if eos is None or params.ignore_eos else ([eos] if isinstance(eos, int) else list(eos))
    stop = frozenset(set(params.stop_token_ids) | set(eos))
    seqs = [Sequence(i, list(p), params.max_new_tokens, stop) for i, p in enumerate(prompts)]
    if rank == TARGET_RANK:
        model = load_model(target_path, dtype, device, max_len)
        model.use_triton_kernels(triton_kernels)
        target = ModelRunner(model, len(prompts), max_len, device, cuda_graphs)
        verifier = RemoteDraftVerifier(target, k, seed)
        telemetry = verifier.generate(seqs, params, on_tokens)
        counts = torch.zeros(4, dtype=torch.long, device=device)
        dist.recv(counts, src=DRAFT_RANK)
        telemetry.cache_lookups, telemetry.cache_hits, telemetry.backup_neural, telemetry.backup_random = \
            counts.tolist()
        return seqs, telemetry.summary()
    draft_model = load_model(draft_path, dtype, device, max_len)
    draft_model.use_triton_kernels(triton_kernels)
    slots = len(prompts) * (1 + Saguaro.branch_count(k, draft_model.config.vocab_size, **ssd_options))
    draft = ModelRunner(draft_model, slots, max_len, device, cuda_graphs)
    DraftServer(Saguaro(None, draft, k=k, seed=seed + 1, use_streams=False, **ssd_options)).serve(seqs, params)
    return None


class RemoteDraftVerifier(Strategy):
    """Rank 0: receives each round's proposal from rank 1, verifies it, sends the outcome back."""

    name = "ssd-distributed"
    verify = SpeculativeDecoding.verify
    emit = SpeculativeDecoding.emit

    def __init__(self, target: ModelRunner, k: int, seed: int = 0) -> None:
        self.k = k
        super().__init__(target, seed)

    def lookahead(self) -> int:
        return 2 * self.k + 2

    def step(self, seqs: list[Sequence], params: SamplingParams) -> list[list[int]]:
        b = len(seqs)
        tokens = torch.empty((b, self.k), dtype=torch.long, device=self.device)
        q = torch.empty((b, self.k, self.target.vocab_size), device=self.device)
        with self.telemetry.timer("draft"):  # exposed drafting latency: waiting for the proposal
            dist.recv(tokens, src=DRAFT_RANK)
            dist.recv(q, src=DRAFT_RANK)
        with self.telemetry.timer("verify"):
            accepted, bonus = self.verify(seqs, tokens, q, params)
        dist.send(torch.stack([accepted, bonus]).long(), dst=DRAFT_RANK)
        return self.emit(tokens, accepted, bonus)


class DraftServer:
    """Rank 1: proposes, builds the speculation cache while rank 0 verifies, then commits the outcome."""

    def __init__(self, saguaro: Saguaro) -> None:
        self.saguaro = saguaro

    def serve(self, seqs: list[Sequence], params: SamplingParams) -> None:
        s = self.saguaro
        s.telemetry = type(s.telemetry)(strategy="ssd-draft", k=s.k)
        s.prefill(seqs)
        try:
            active = [q for q in seqs if not q.finished]
            while active:
                tokens, q, logits = s.lookup_or_backup(active, params)
                pending = [dist.isend(tokens.contiguous(), TARGET_RANK), dist.isend(q.contiguous(), TARGET_RANK)]
                speculations = s.build_cache(active, tokens, logits, params)  # overlaps the target's verify
                for request in pending:
                    request.wait()
                outcome = torch.empty((2, len(active)), dtype=torch.long, device=s.device)
                dist.recv(outcome, src=TARGET_RANK)
                new_tokens = s.commit(active, tokens, speculations, outcome[0], outcome[1])
                for seq, toks in zip(active, new_tokens, strict=True):
                    seq.append(toks)
                active = [q for q in active if not q.finished]
        finally:
            s.release(seqs)
        t = s.telemetry
        counts = torch.tensor([t.cache_lookups, t.cache_hits, t.backup_neural, t.backup_random], device=s.device)
        dist.send(counts, dst=TARGET_RANK)

