"""Account rules shared by ``weeke users add`` and the admin's user forms."""

from __future__ import annotations

from django.contrib.auth.validators import ASCIIUsernameValidator
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible


@deconstructible
class UsernameValidator:
    """Django's ASCII user-name rule (letters, digits and ``@.+-_``, 1-150 characters: no
    spaces, no markup, no look-alike Unicode that NFKC would fold into another user's name at
    login), starting with a letter or digit."""

    message = ("use 1-150 ASCII letters, digits and @ . + - _ , starting with a letter or "
               "digit (no spaces)")

    def __call__(self, value: str) -> None:
        if not value or len(value) > 150 or not (value[0].isascii() and value[0].isalnum()):
            raise ValidationError(self.message, code="invalid")
        try:
            ASCIIUsernameValidator()(value)
        except ValidationError as exc:
            raise ValidationError(self.message, code="invalid") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UsernameValidator)

    def __hash__(self) -> int:
        return hash(type(self))


USERNAME_VALIDATOR = UsernameValidator()
