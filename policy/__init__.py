"""The CrossGuard policy pack that reviews every stack (`pulumi preview --policy-pack policy`).

The rules are plain functions in `policy.rules`; `policy.pack` wraps them as Pulumi policies and
`policy.evaluate` runs the very same functions offline over a stack's declared resources.
"""
