//! The words clients see, in Django, DRF and SimpleJWT's own wording, so that a client
//! written against the Django API (API.md §2) finds the messages it already knows.

pub const REQUIRED: &str = "This field is required.";
pub const BLANK: &str = "This field may not be blank.";
pub const NULL: &str = "This field may not be null.";
pub const NOT_A_STRING: &str = "Not a valid string.";
pub const NULL_CHARACTERS: &str = "Null characters are not allowed.";

pub const USERNAME_INVALID: &str =
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
pub const USERNAME_TOO_LONG: &str = "Ensure this field has no more than 150 characters.";
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
pub const EMAIL_INVALID: &str = "Enter a valid email address.";
pub const EMAIL_TOO_LONG: &str = "Ensure this field has no more than 254 characters.";
pub const EMAIL_TAKEN: &str = "A user with that email already exists.";
pub const NAME_TOO_LONG: &str = "Ensure this field has no more than 150 characters.";

pub const PASSWORD_TOO_LONG: &str = "Ensure this field has no more than 4096 bytes.";
pub const PASSWORD_TOO_COMMON: &str = "This password is too common.";
pub const PASSWORD_ENTIRELY_NUMERIC: &str = "This password is entirely numeric.";
pub const INVALID_PASSWORD: &str = "Invalid password.";

pub const LOGIN_FAILED: &str = "No active account found with the given credentials";
pub const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";
pub const TOKEN_NOT_VALID_FOR_ANY_TYPE: &str = "Given token not valid for any token type";
pub const TOKEN_INVALID_OR_EXPIRED: &str = "Token is invalid or expired";
pub const TOKEN_BLACKLISTED: &str = "Token is blacklisted";
pub const USER_NOT_FOUND: &str = "User not found";
pub const USER_INACTIVE: &str = "User is inactive";
pub const NO_ACTIVE_ACCOUNT_FOR_TOKEN: &str = "No active account found for the given token.";

pub const NOT_A_BOOLEAN: &str = "Must be a valid boolean.";
pub const INVALID_PAGE: &str = "Invalid page.";
pub const LAST_SUPERUSER_DEMOTED: &str = "The last active superuser cannot be demoted.";
pub const LAST_SUPERUSER_DEACTIVATED: &str = "The last active superuser cannot be deactivated.";
pub const LAST_SUPERUSER_DELETED: &str = "The last active superuser cannot be deleted.";
pub const USER_REFERENCED: &str =
    "This user cannot be deleted because other records refer to it. Deactivate the user instead.";

pub const NOT_FOUND: &str = "Not found.";
pub const PERMISSION_DENIED: &str = "You do not have permission to perform this action.";
pub const INVALID_HOST: &str = "Invalid Host header.";
pub const HEADERS_TOO_LARGE: &str = "Request header fields too large.";
pub const REQUEST_BODY_TIMEOUT: &str = "The request body took too long to arrive.";
pub const PAYLOAD_TOO_LARGE: &str = "Request body is larger than 64 KiB.";
pub const SERVER_ERROR: &str = "A server error occurred.";
pub const SERVICE_UNAVAILABLE: &str = "Service temporarily unavailable, try again later.";

pub const REGISTERED: &str = "User registered successfully";
pub const ACCOUNT_DELETED: &str = "Account deleted successfully";
pub const LOGGED_OUT: &str = "Logged out";
pub const PASSWORD_CHANGED: &str = "Password changed successfully";
pub const PASSWORD_RESET: &str = "Password reset successful";
pub const RESET_TOKEN_INVALID: &str = "Invalid or expired token.";

/// DRF's `Throttled` message.
pub fn throttled(wait_secs: u64) -> String {
    let unit = if wait_secs == 1 { "second" } else { "seconds" };
    format!("Request was throttled. Expected available in {wait_secs} {unit}.")
}

/// Django's `MinimumLengthValidator` message.
pub fn password_too_short(min_length: usize) -> String {
    let noun = if min_length == 1 {
        "character"
    } else {
        "characters"
    };
    format!("This password is too short. It must contain at least {min_length} {noun}.")
}

/// Django's `UserAttributeSimilarityValidator` message; `attribute` is the field's
/// verbose name ("username", "email address", …).
pub fn password_too_similar(attribute: &str) -> String {
    format!("The password is too similar to the {attribute}.")
}

/// The 400 for `?ordering=` naming a field that cannot be ordered by.
pub fn invalid_ordering(fields: &[String]) -> String {
    format!(
        "Invalid ordering field(s): {}. Choose from id, username, email, date_joined, each with an optional leading '-'.",
        fields.join(", ")
    )
}

pub fn too_many_search_terms(max: usize) -> String {
    format!("Use at most {max} search terms.")
}

/// DRF's `MethodNotAllowed` message.
pub fn method_not_allowed(method: &str) -> String {
    format!("Method \"{method}\" not allowed.")
}

/// DRF's `UnsupportedMediaType` message.
pub fn unsupported_media_type(media_type: &str) -> String {
    format!("Unsupported media type \"{media_type}\" in request.")
}

/// DRF's `ParseError` message for a body that is not JSON.
pub fn json_parse_error(reason: &str) -> String {
    format!("JSON parse error - {reason}")
}

/// DRF's message for a body that is JSON but not an object.
pub fn expected_object(got: &str) -> String {
    format!("Invalid data. Expected a dictionary, but got {got}.")
}
