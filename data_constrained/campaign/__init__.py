"""The GPU campaign as resumable chunks: the paper's methodology at our budget, run a few minutes at a time.

A chunk is one command on a bare machine (`make dc-gpu-chunk`): it reads the finished runs committed under
`experiments/data_constrained/results/<scale>_runs/`, plans what is needed next, trains as many of those runs as fit
in `time_budget_s`, and writes each finished run's record (and test log-probs) as it goes - into the state folder,
or as tar bundles into `campaign.results_out` ($OUT via DC_RESULTS_OUT), which `ingest` unpacks into the state
folder here. The next chunk starts from the larger state. Nothing but the records travels between chunks: the
models a run needs (distillation teachers, the pre-trained model of continued pre-training) are retrained from
their seeds inside the chunk.

Modules, in the order a chunk uses them: `config` (the campaign's settings), `specs` (a run, its TrainConfig, its
id), `state` (records on disk, bundles, ingest), `plan` (which runs come next: coordinate descent per recipe and
budget, replicates, distillation, continued pre-training), `chunk` (the cost model and the chunk loop), `index`
(the sweep index), `analysis` (fits, multipliers and bootstrap intervals over seeds), `simulate` (the campaign's
size on a synthetic surface); `__main__`: plan / simulate / ingest / fit / plot.
"""
