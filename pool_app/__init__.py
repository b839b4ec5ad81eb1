"""The ebook-pool application: the `ebook-pool` CLI, the wiring of real parts, demo, progress,
reports and the producer's side of the contract. It imports the `pool` library and the
`generator`; neither imports it back."""
