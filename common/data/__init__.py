"""Shared data sets built offline from package-registry sources (see `common.data.text`)."""
