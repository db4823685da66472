"""fewgen's ``yolo`` evaluator: did the synthetic data help a detector on real data?"""
