"""Conversation states (docs/bot.md, "Conversation states"), kept in Redis by aiogram's RedisStorage."""

from aiogram.fsm.state import State, StatesGroup


class LoginStates(StatesGroup):
    WAITING_PHONE = State()
    WAITING_CODE = State()
    WAITING_PASSWORD = State()


class BroadcastStates(StatesGroup):
    WAITING_BROADCAST_MSG = State()
    WAITING_INTERVAL = State()


class AdminStates(StatesGroup):
    WAITING_ADMIN_ANNOUNCE = State()
    WAITING_ADMIN_ANNOUNCE_CONFIRM = State()
