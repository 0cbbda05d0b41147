"""The Paimon lake: table layout shared by the Flink jobs and the pypaimon sink."""
