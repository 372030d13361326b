"""The job queue: jobs, the backends that run them, and the worker side.

Kept free of imports, like bot/__init__.py: worker processes import
bot.jobs.worker through this package and must not pay for anything else.
"""
