"""Multi-process layouts: a tensor-parallel target, the draft on a device of its own; torchrun, one process per GPU.

    torchrun --nproc_per_node=5 -m ssd.generate runtime.layout=distributed parallel.tensor_parallel=4 \\
        parallel.draft=own model=path model.path=... model.draft_path=...      # TP4 target + the draft on GPU 4

Ranks 0..P-1 hold the target's tensor-parallel shards (`ssd.engine.tensor_parallel`; P = 1 is the whole model).
Rank 0 is the host: it streams tokens and returns the results. The draft has two placements:

- `draft=shared` (world P): every target rank also holds a full copy of the draft and runs the same strategy
  (AR, SD or SSD) round by round; the ranks stay in lock step because every decision reads the gathered logits
  (the same bytes everywhere) and every rank's generator is seeded alike. Nothing else is exchanged.
- `draft=own` (world P + 1): rank P holds the draft, the speculation cache and the backup speculator. Per round,
  for the R rows of the batch:

      draft rank:  [backup graph for the rows that missed] --broadcast tokens (R,K) [, q (R,K,V)]--> target ranks
      draft rank:  build the cache for this round's outcomes   | target ranks: verify (TP forward + rule), emit
      target rank 0 --send outcome (2, R): accepted, bonus--> draft rank: emit the same tokens, commit the
                                                               outcome (cache lookup, branch KV copy, miss flags)

  Both sides emit the same tokens with the same stop rules into their own device batches, so their states stay
  identical. With `strategy=sd` the draft rank drafts K tokens per round instead (no cache; the draft idles
  during the verify): SD with the draft on its own device, for comparison.

No host round trip per round on the target ranks: the proposal and the outcome move between static device
buffers by broadcast / send / recv, which NCCL enqueues on the stream (the host never reads them); the verify is
one CUDA-graph replay (its TP all-reduces and gather inside); and the host reads each round's small output a round
late (`lag = 1`), so it queues round r+1 before it looks at round r. The draft rank reads each round's output at
once, as single-device SSD does, because a miss decides whether the backup graph runs before the next proposal;
its proposal broadcast is asynchronous, so the cache building starts while the proposal is in flight. Since the
target ranks learn a round late that every sequence is done, the draft runs one trailing round on finished rows,
so both sides run the same number of rounds. On the CPU the same code runs over gloo (the tests).

Rank 0's telemetry counts the time it waits for a proposal as `draft` (the drafting latency it could not hide);
the draft rank sends its cache hit counts at the end. The draft rank seeds its generator with seed + 1: the
draft's and the verifier's random numbers are independent, which is all exactness needs.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ssd.decoding.autoregressive import Autoregressive
from ssd.decoding.base import RoundState, Strategy, TokenCallback
from ssd.decoding.saguaro import Saguaro
from ssd.decoding.speculative import SpeculativeDecoding
from ssd.engine.batch import apply_out
from ssd.engine.model_runner import ModelRunner
from ssd.engine.round_graph import RoundGraph
from ssd.engine.sampler import SamplingParams
from ssd.engine.sequence import Sequence
from ssd.engine.telemetry import Telemetry
from ssd.engine.tensor_parallel import TensorParallelGroup, load_tensor_parallel
from ssd.models.llama import Llama
from ssd.models.loading import load_model

STRATEGIES = ("ar", "sd", "ssd")


def init_process_group(device: str, init_method: str | None = None, rank: int | None = None,
                       world_size: int | None = None, timeout_s: float | None = None) -> int:
    """Join the process group (env:// from torchrun unless `init_method`): NCCL for CUDA devices, else gloo.

    On CUDA the process first binds to its local GPU (`LOCAL_RANK`, else rank modulo the device count).
    `timeout_s` bounds how long a collective waits for a rank that never comes (torch's default: 10 minutes).
    Returns this process's rank.
    """
    if not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(rank_device(device, rank))
        backend = "nccl" if device.startswith("cuda") else "gloo"
        options: dict[str, Any] = {} if init_method is None else {"init_method": init_method, "rank": rank,
                                                                  "world_size": world_size}
        if timeout_s is not None:
            options["timeout"] = datetime.timedelta(seconds=timeout_s)
        dist.init_process_group(backend, **options)
    return dist.get_rank()


def rank_device(device: str, rank: int | None = None) -> str:
    """This process's device: `cuda:<local rank>` for "cuda", the given device otherwise."""
    if device != "cuda":
        return device
    local = os.environ.get("LOCAL_RANK")
    if local is None:
        local = (dist.get_rank() if rank is None else rank) % torch.cuda.device_count()
    return f"cuda:{int(local)}"


# --------------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Which rank does what: target ranks (one tensor-parallel group) and, with `draft=own`, a draft rank.

    `tp` is this rank's TP group (target ranks of a P > 1 layout; None elsewhere) and `tp_group` the handle
    `new_group` gave every rank for it (what `make_layout(tp_group=...)` reuses); `exchange` the group of the target
    ranks and the draft rank that the proposals are broadcast over (its members only; None without a draft rank).
    Ranks outside the layout (a benchmark's spare GPUs) have role "idle".
    """

    rank: int
    target_ranks: tuple[int, ...]
    draft_rank: int | None
    tp: TensorParallelGroup | None
    exchange: Any
    tp_group: Any = None

    @property
    def role(self) -> str:
        if self.rank in self.target_ranks:
            return "target"
        return "draft" if self.rank == self.draft_rank else "idle"

    @property
    def host(self) -> bool:
        """This rank streams tokens, returns results, and sends the outcome to the draft rank."""
        return self.rank == self.target_ranks[0]

    def broadcast_proposal(self, buffers: dict[str, Tensor], async_op: bool) -> list[Any]:
        """Draft rank -> every target rank: the proposal tokens (and q when sampling), in place."""
        names = ["tokens"] + (["q"] if "q" in buffers else [])
        works = [dist.broadcast(buffers[name], src=self.draft_rank, group=self.exchange, async_op=async_op)
                 for name in names]
        return [w for w in works if w is not None]


def make_layout(tensor_parallel: int, draft_own_device: bool, tp_group: Any = None) -> Layout:
    """Target ranks 0 .. P-1, then the draft rank P (with `draft_own_device`); ranks past them are idle.

    Collective: every rank of the world calls it, in the same order (it creates the groups with `new_group`).
    `tp_group` reuses the TP group of another layout over the same target ranks (one loaded model serves both:
    its all-reduce hooks are bound to that group).
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    need = tensor_parallel + int(draft_own_device)
    if tensor_parallel < 1 or need > world:
        raise ValueError(f"tensor_parallel={tensor_parallel} target ranks{' + 1 draft rank' if draft_own_device else ''}"
                         f" need {need} processes; the world has {world}")
    targets = tuple(range(tensor_parallel))
    draft = tensor_parallel if draft_own_device else None
    if tp_group is None and tensor_parallel > 1:
        tp_group = dist.new_group(list(targets))
    exchange = dist.new_group([*targets, draft]) if draft_own_device else None
    tp = TensorParallelGroup.of(tp_group) if tp_group is not None and rank in targets else None
    member = rank in targets or rank == draft
    return Layout(rank, targets, draft, tp, exchange if member else None, tp_group)


# ------------------------------------------------------------------------------------------------- loading


def load_rank_models(layout: Layout, target_path: str | Path | None, draft_path: str | Path | None,
                     dtype: torch.dtype, device: str, max_len: int,
                     triton_kernels: bool | None = None) -> tuple[Llama | None, Llama | None]:
    """This rank's (target shard, draft): target ranks load their shard (+ a whole draft with `draft=shared`),
    the draft rank loads the draft alone; idle ranks load nothing."""
    if triton_kernels is None:
        triton_kernels = device.startswith("cuda")
    target = draft = None
    if layout.role == "target":
        target = load_tensor_parallel(target_path, layout.tp, dtype, device, max_len)
        target.use_triton_kernels(triton_kernels)
    wants_draft = layout.role == "draft" or (layout.role == "target" and layout.draft_rank is None)
    if wants_draft and draft_path is not None:
        draft = load_model(draft_path, dtype, device, max_len)
        draft.use_triton_kernels(triton_kernels)
    return target, draft


def stop_token_ids(model_path: str | Path, params: SamplingParams) -> list[int]:
    """The stop ids of a request: `params.stop_token_ids` and, unless `ignore_eos`, the checkpoint's EOS ids."""
    eos = json.loads((Path(model_path) / "config.json").read_text()).get("eos_token_id")
    eos = [] if eos is None or params.ignore_eos else ([eos] if isinstance(eos, int) else list(eos))
    return sorted(set(params.stop_token_ids) | set(eos))


def generate_distributed(target_path: str | Path, draft_path: str | Path | None, prompts: list[list[int]],
                         params: SamplingParams, strategy: str = "ssd", tensor_parallel: int | None = None,
                         draft_own_device: bool = True, k: int = 4, device: str = "cpu",
                         dtype: torch.dtype = torch.float32, max_len: int = 1024, seed: int = 0,
                         on_tokens: TokenCallback | None = None, triton_kernels: bool | None = None,
                         cuda_graphs: bool = True, **ssd_options) -> tuple[list[Sequence], dict] | None:
    """One generation over the whole world (call on every rank after `init_process_group`).

    `tensor_parallel` defaults to every rank but the draft's. Target ranks return (finished sequences, telemetry
    summary; the host's has the cache counts), the draft rank None. Token streaming (`on_tokens`) runs on rank 0.
    """
    world = dist.get_world_size()
    tp = tensor_parallel or world - int(draft_own_device)
    if tp + int(draft_own_device) != world:
        raise ValueError(f"tensor_parallel={tp}{' + 1 draft rank' if draft_own_device else ''} needs "
                         f"{tp + int(draft_own_device)} processes, the world has {world}: launch with torchrun "
                         f"--nproc_per_node={tp + int(draft_own_device)}")
    layout = make_layout(tp, draft_own_device)
    device = rank_device(device)
    max_position = json.loads((Path(target_path) / "config.json").read_text()).get("max_position_embeddings")
    max_len = min(max_len, max_position or max_len)
    target, draft = load_rank_models(layout, target_path, draft_path if strategy != "ar" else None, dtype, device,
                                     max_len, triton_kernels)
    engine = DistributedEngine(layout, strategy, target, draft, stop_token_ids(target_path, params), k=k,
                               max_batch_size=len(prompts), max_len=max_len, seed=seed, cuda_graphs=cuda_graphs,
                               **ssd_options)
    return engine.generate(prompts, params, on_tokens)


# --------------------------------------------------------------------------------------------------- engine


class DistributedEngine:
    """This rank's part of a multi-process engine for one strategy (build it on every rank of the layout).

    `target` / `draft` are this rank's models (`load_rank_models`, or shards built from random weights); models
    can be shared by several engines (each has its own KV caches). `generate` on every rank runs one batch.
    """

    def __init__(self, layout: Layout, strategy: str, target: Llama | None, draft: Llama | None,
                 stop_ids: list[int], k: int = 4, max_batch_size: int = 8, max_len: int = 1024, seed: int = 0,
                 cuda_graphs: bool = True, **ssd_options: Any) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if layout.draft_rank is not None and strategy == "ar":
            raise ValueError("strategy='ar' has no draft: use draft=shared (no draft rank) for AR")
        self.layout, self.stop_ids = layout, list(stop_ids)
        self.strategy: Strategy | None = None
        self.server: DraftServer | None = None
        if layout.role == "target":
            runner = ModelRunner(target, max_batch_size, max_len, next(target.parameters()).device)
            if layout.draft_rank is None:
                self.strategy = make_strategy(strategy, runner, draft, k, max_batch_size, max_len, seed,
                                              cuda_graphs, **ssd_options)
            else:
                self.strategy = RemoteDraftVerifier(runner, k, layout, seed, cuda_graphs, name=f"{strategy}-own-draft")
        elif layout.role == "draft":
            device = next(draft.parameters()).device
            if strategy == "ssd":
                slots = max_batch_size * (1 + Saguaro.branch_count(k, draft.config.vocab_size, **ssd_options))
                proposer = Saguaro(None, ModelRunner(draft, slots, max_len, device), k=k, seed=seed + 1,
                                   use_streams=False, cuda_graphs=cuda_graphs, **ssd_options)
            else:
                proposer = SpeculativeDecoding(None, ModelRunner(draft, max_batch_size, max_len, device), k=k,
                                               seed=seed + 1, cuda_graphs=cuda_graphs)
            self.server = DraftServer(proposer, layout)

    def generate(self, prompts: list[list[int]], params: SamplingParams, on_tokens: TokenCallback | None = None,
                 timing: bool = False) -> tuple[list[Sequence], dict] | None:
        """Decode `prompts` (token ids) as one batch; target ranks return (sequences, telemetry summary)."""
        if self.layout.role == "idle":
            return None
        stop = frozenset(self.stop_ids)
        seqs = [Sequence(i, list(p), params.max_new_tokens, stop) for i, p in enumerate(prompts)]
        if self.server is not None:
            self.server.serve(seqs, params)
            return None
        telemetry = self.strategy.generate(seqs, params, on_tokens if self.layout.host else None, timing)
        if self.layout.draft_rank is not None and self.layout.host:
            counts = torch.zeros(4, dtype=torch.long, device=self.strategy.device)
            dist.recv(counts, src=self.layout.draft_rank)
            telemetry.cache_lookups, telemetry.cache_hits, telemetry.backup_neural, telemetry.backup_random = \
                counts.tolist()
        return seqs, telemetry.summary()


def make_strategy(strategy: str, target: ModelRunner, draft: Llama | None, k: int, max_batch_size: int,
                  max_len: int, seed: int, cuda_graphs: bool, **ssd_options: Any) -> Strategy:
    """The strategy `ssd.engine.llm.LLM` builds, over this rank's target runner and a whole draft model."""
    if strategy == "ar":
        return Autoregressive(target, seed=seed, cuda_graphs=cuda_graphs)
    if draft is None:
        raise ValueError(f"strategy={strategy!r} needs a draft model")
    if draft.config.vocab_size != target.vocab_size:
        raise ValueError(f"draft vocab {draft.config.vocab_size} != target vocab {target.vocab_size}; they must "
                         "share a tokenizer")
    if strategy == "sd":
        runner = ModelRunner(draft, max_batch_size, max_len, target.device)
        return SpeculativeDecoding(target, runner, k=k, seed=seed, cuda_graphs=cuda_graphs)
    probe = Saguaro.branch_count(k, target.vocab_size, **ssd_options)
    runner = ModelRunner(draft, max_batch_size * (1 + probe), max_len, target.device)
    return Saguaro(target, runner, k=k, seed=seed, cuda_graphs=cuda_graphs, **ssd_options)


# ------------------------------------------------------------------------------------------- draft=own sides


class RemoteDraftVerifier(SpeculativeDecoding):
    """A target rank of `draft=own`: takes each round's proposal from the draft rank, verifies it (TP: every target
    rank), and the host rank sends the outcome back; the round's device work is one graph, read a round late."""

    lag = 1
    timer_of = {"verify": "verify"}

    def __init__(self, target: ModelRunner, k: int, layout: Layout, seed: int = 0, cuda_graphs: bool = True,
                 name: str = "ssd-own-draft") -> None:
        self.k, self.name, self.layout = k, name, layout
        Strategy.__init__(self, target, seed, cuda_graphs=cuda_graphs)
        self.vocab_size = target.vocab_size
        self._sending: Any = None  # the outcome send in flight (waited for before the next verify writes it)

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

    def round_pieces(self, state: RoundState) -> dict[str, Callable[[], None]]:
        return {"verify": lambda: self.verify_and_emit(state)}

    def verify_and_emit(self, state: RoundState) -> None:
        buf = state.buffers
        accepted, bonus = self.verify(state, buf["tokens"], buf.get("q"))
        buf["outcome"].copy_(torch.stack([accepted, bonus]))
        self.emit(state, buf["tokens"], accepted, bonus)

    def generate(self, seqs: list[Sequence], params: SamplingParams, on_tokens: TokenCallback | None = None,
                 timing: bool = False) -> Telemetry:
        telemetry = super().generate(seqs, params, on_tokens, timing)
        self._wait_sent()
        return telemetry

    def run_round(self, state: RoundState) -> None:
        buf = state.buffers
        with self.telemetry.timer("draft", self.stream()):  # exposed drafting latency: waiting for the proposal
            self.layout.broadcast_proposal(buf, async_op=False)
        self._wait_sent()  # the last outcome has left before this round's verify overwrites it
        super().run_round(state)
        if self.layout.host:
            self._sending = dist.isend(buf["outcome"], dst=self.layout.draft_rank)

    def _wait_sent(self) -> None:
        if self._sending is not None:
            self._sending.wait()
            self._sending = None


class DraftServer:
    """The draft rank of `draft=own`: proposes, builds the speculation cache while the target ranks verify (SSD),
    then takes the outcome from the host rank and commits it. Each piece is a CUDA graph on a GPU."""

    def __init__(self, proposer: SpeculativeDecoding, layout: Layout,
                 target_lag: int = RemoteDraftVerifier.lag) -> None:
        self.proposer, self.layout, self.target_lag = proposer, layout, target_lag
        self.caching = isinstance(proposer, Saguaro)

    def serve(self, seqs: list[Sequence], params: SamplingParams) -> Telemetry:
        """Run rounds until the target ranks stop (one trailing round per round of their lag); send the counts."""
        s = self.proposer
        with torch.inference_mode():
            state = s.state_for(s.padded_rows(len(seqs)), params)
            graphs = self._graphs(state)
            for graph in (*graphs.values(), *state.extra.values()):
                graph.prepare()  # capture before the batch is loaded: the warm-up runs on done rows
            s.telemetry = Telemetry(strategy=f"{s.name}-draft", k=s.k)
            state.counters.reset()
            state.batch.load(seqs, sorted(set().union(*(q.stop_token_ids for q in seqs))))
            s.prefill(seqs, state)
            cuda = s.device.type == "cuda"
            out = torch.empty(tuple(state.batch.out.shape), dtype=torch.long, pin_memory=cuda)
            event = torch.cuda.Event() if cuda else None
            trailing = self.target_lag
            while trailing >= 0:
                self._round(state, graphs)
                state.batch.read_out(out, event)
                if event is not None:
                    event.synchronize()
                s.on_output(state, out)  # SSD: which rows missed (the backup runs before the next proposal)
                apply_out(seqs, out, s.width())
                if all(q.finished for q in seqs):
                    trailing -= 1
            state.counters.read_into(s.telemetry)
        t = s.telemetry
        counts = torch.tensor([t.cache_lookups, t.cache_hits, t.backup_neural, t.backup_random], device=s.device)
        dist.send(counts, dst=self.layout.target_ranks[0])
        return t

    def _round(self, state: RoundState, graphs: dict[str, RoundGraph]) -> None:
        buf = state.buffers
        if not self.caching:
            graphs["propose"]()
        elif state.host["missed"]:
            state.extra["backup_neural" if state.host["neural"] else "backup_random"]()
        sending = self.layout.broadcast_proposal(buf, async_op=True)
        if self.caching:
            graphs["build"]()  # overlaps the target ranks' verify (and the broadcast itself)
        dist.recv(buf["outcome"], src=self.layout.target_ranks[0])
        for work in sending:
            work.wait()  # the commit overwrites the proposal buffers
        graphs["commit"]()

    def _graphs(self, state: RoundState) -> dict[str, RoundGraph]:
        """The draft rank's pieces over this state's static buffers (made once per state)."""
        if "server" not in state.host:
            s = self.proposer
            state.buffers["outcome"] = torch.zeros((2, state.batch.rows), dtype=torch.long, device=s.device)
            graphs = {"commit": s.graph(lambda: self._commit(state))}
            if self.caching:
                graphs["build"] = s.graph(lambda: self._build(state))
            else:
                graphs["propose"] = s.graph(lambda: s.draft_round(state))
            state.host["server"] = graphs
        return state.host["server"]

    def _build(self, state: RoundState) -> None:
        self.proposer.branch_inputs(state)
        self.proposer.build_cache(state)

    def _commit(self, state: RoundState) -> None:
        s, buf = self.proposer, state.buffers
        accepted, bonus = buf["outcome"][0], buf["outcome"][1]
        if self.caching:
            buf["accepted"].copy_(accepted)
            buf["bonus"].copy_(bonus)
        s.emit(state, buf["tokens"], accepted, bonus)
        if self.caching:
            s.commit(state)
