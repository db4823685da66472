"""fewgen review: a run folder as a FiftyOne dataset, and the FiftyOne App to look at it."""
