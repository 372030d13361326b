"""stylebot's Telegram front end (aiogram 3). `python -m bot` runs it.

Kept free of imports: job worker processes import `bot.jobs.worker` through this
package and must not pay for aiogram.
"""
