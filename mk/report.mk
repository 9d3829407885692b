# Evidence checks on the committed results JSON (common/verify_results.py). `make report` itself is in the Makefile.
.PHONY: verify-results

verify-results: $(STAMP)  ## list results with dirty provenance, gpu scale run on a CPU, no citing figure/claim, or older than their package's code (STRICT=1 fails on any)
	$(PY) -m common.verify_results $(if $(STRICT),--strict,)
