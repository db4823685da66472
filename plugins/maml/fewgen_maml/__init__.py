"""fewgen-maml: model-agnostic meta-learning (Finn, Abbeel and Levine, ICML 2017) for few-shot tasks."""
