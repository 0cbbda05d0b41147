"""Pipeline health in one screen: gather figures from each part, then render them."""
