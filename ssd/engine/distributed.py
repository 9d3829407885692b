"""SSD with the draft on a device of its own: two processes, torch.distributed, launched by torchrun.

    torchrun --nproc_per_node=2 -m ssd.generate runtime.layout=distributed model=path model.path=... \\
        model.draft_path=...

Rank 0 holds the target and verifies; rank 1 holds the draft, the speculation cache and the backup speculator
(a `Saguaro` strategy without a target, run piece by piece). Per round, for the B rows of the batch:

    rank 1: propose (the proposal committed from the cache, or backup) --send tokens (B,K), q (B,K,V)--> rank 0
    rank 1: build the speculation cache for this round's outcomes      | rank 0: verify (target forward + rule)
    rank 1: <--recv outcome (accepted (B,), bonus (B,))-- rank 0
    both:   emit the same tokens with the same stop rules into their own device batches, so both keep identical
            states; rank 1 then commits (cache lookup, branch KV copy, miss flags).

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

from ssd.decoding.base import RoundState, Strategy
from ssd.decoding.saguaro import Saguaro
from ssd.decoding.speculative import SpeculativeDecoding
from ssd.engine.batch import apply_out
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
                         max_len: int = 1024, seed: int = 0, on_tokens=None, triton_kernels: bool | None = None,
                         cuda_graphs: bool = True,
                         **ssd_options) -> tuple[list[Sequence], dict] | None:
    """Run on both ranks; rank 0 returns (finished sequences, telemetry summary), rank 1 returns None."""
    rank = dist.get_rank()
    if triton_kernels is None:
        triton_kernels = device.startswith("cuda")
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
        target = ModelRunner(model, len(prompts), max_len, device)
        verifier = RemoteDraftVerifier(target, k, seed, cuda_graphs)
        telemetry = verifier.generate(seqs, params, on_tokens)
        counts = torch.zeros(4, dtype=torch.long, device=device)
        dist.recv(counts, src=DRAFT_RANK)
        telemetry.cache_lookups, telemetry.cache_hits, telemetry.backup_neural, telemetry.backup_random = \
            counts.tolist()
        return seqs, telemetry.summary()
    draft_model = load_model(draft_path, dtype, device, max_len)
    draft_model.use_triton_kernels(triton_kernels)
    slots = len(prompts) * (1 + Saguaro.branch_count(k, draft_model.config.vocab_size, **ssd_options))
    draft = ModelRunner(draft_model, slots, max_len, device)
    DraftServer(Saguaro(None, draft, k=k, seed=seed + 1, use_streams=False, cuda_graphs=False,
                        **ssd_options)).serve(seqs, params)
    return None


class RemoteDraftVerifier(SpeculativeDecoding):
    """Rank 0: receives each round's proposal from rank 1, verifies it, sends the outcome back."""

    name = "ssd-distributed"
    lag = 0
    timer_of = {"verify": "verify"}

    def __init__(self, target: ModelRunner, k: int, seed: int = 0, cuda_graphs: bool = True) -> None:
        self.k = k
        Strategy.__init__(self, target, seed, cuda_graphs=cuda_graphs)
        self.vocab_size = target.vocab_size

    def lookahead(self) -> int:
        return 2 * self.k + 2

    def max_rows(self) -> int:
        return self.target.num_slots

    def max_len(self) -> int:
        return self.target.max_len

    def init_state(self, state: RoundState) -> None:
        Strategy.init_state(self, state)
        state.buffers["tokens"] = torch.zeros((state.batch.rows, self.k), dtype=torch.long, device=self.device)
        if not state.params.greedy:
            state.buffers["q"] = torch.zeros((state.batch.rows, self.k, self.vocab_size), device=self.device)
        state.buffers["outcome"] = torch.zeros((2, state.batch.rows), dtype=torch.long, device=self.device)

    def prefill(self, seqs: list[Sequence], state: RoundState) -> None:
        Strategy.prefill(self, seqs, state)

    def round_pieces(self, state: RoundState) -> dict:
        return {"verify": lambda: self.verify_and_emit(state)}

    def verify_and_emit(self, state: RoundState) -> None:
        buf = state.buffers
        accepted, bonus = self.verify(state, buf["tokens"], buf.get("q"))
        buf["outcome"].copy_(torch.stack([accepted, bonus]))
        self.emit(state, buf["tokens"], accepted, bonus)

    def run_round(self, state: RoundState) -> None:
        buf = state.buffers
        with self.telemetry.timer("draft", self.stream()):  # exposed drafting latency: waiting for the proposal
            dist.recv(buf["tokens"], src=DRAFT_RANK)
            if "q" in buf:
                dist.recv(buf["q"], src=DRAFT_RANK)
        super().run_round(state)
        dist.send(buf["outcome"], dst=DRAFT_RANK)


class DraftServer:
    """Rank 1: proposes, builds the speculation cache while rank 0 verifies, then commits the outcome."""

    def __init__(self, saguaro: Saguaro) -> None:
        self.saguaro = saguaro

    def serve(self, seqs: list[Sequence], params: SamplingParams) -> None:
        s = self.saguaro
        with torch.inference_mode():
            state = s.state_for(len(seqs), params)
            s.telemetry = type(s.telemetry)(strategy="ssd-draft", k=s.k)
            state.counters.reset()
            state.batch.load(seqs, sorted(set().union(*(q.stop_token_ids for q in seqs))))
            s.prefill(seqs, state)
            buf = state.buffers
            out = torch.empty(tuple(state.batch.out.shape), dtype=torch.long)
            while any(not q.finished for q in seqs):
                if state.host["missed"]:
                    s.backup_round(state, state.host["neural"])
                dist.send(buf["tokens"], dst=TARGET_RANK)
                if not params.greedy:
                    dist.send(buf["q"], dst=TARGET_RANK)
                s.branch_inputs(state)
                s.build_cache(state)  # overlaps the target's verify (it runs in the other process)
                outcome = torch.empty((2, state.batch.rows), dtype=torch.long, device=s.device)
                dist.recv(outcome, src=TARGET_RANK)
                buf["accepted"].copy_(outcome[0])
                buf["bonus"].copy_(outcome[1])
                s.emit(state, buf["tokens"], outcome[0], outcome[1])
                s.commit(state)
                out.copy_(state.batch.out)
                s.on_output(state, out)
                apply_out(seqs, out, s.width())
            state.counters.read_into(s.telemetry)
        t = s.telemetry
        counts = torch.tensor([t.cache_lookups, t.cache_hits, t.backup_neural, t.backup_random], device=s.device)
        dist.send(counts, dst=TARGET_RANK)
