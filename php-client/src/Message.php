<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Internal\Text;

/**
 * One message for one client, or for every member of a group, checked and
 * encoded when it is made: a text (delivered to the browser as a JSON
 * string, exactly, white space included) or a JSON value. Immutable.
 *
 *     Message::of('alice', 'Hello');            // a string is text
 *     Message::of('bob', ['score' => 3]);       // anything else is JSON
 *     Message::json('carol', 'a JSON string');  // a string sent as JSON, by choice
 *     Message::toGroup('room:42', 'Hi all', 'alice');  // every member of room:42 but alice
 */
final class Message
{
    public const TEXT = 'text';
    public const JSON = 'json';

    private string $group = '';

    private string $except = '';

    /**
     * How JSON payloads are encoded: UTF-8 and slashes kept as they are,
     * 1.0 kept as 1.0, and any failure thrown rather than papered over.
     */
    public const JSON_FLAGS = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;

    private string $to;

    private string $type;

    private string $payload;

    private function __construct(string $to, string $type, string $payload)
    {
        $this->to = $to;
        $this->type = $type;
        $this->payload = $payload;
    }

    /**
     * A string is sent as text; anything else (an array, a stdClass, a
     * JsonSerializable, a number, a bool, null) as JSON.
     *
     * @param mixed $data
     *
     * @throws InvalidArgumentException for a bad client id or a payload that cannot be sent
     */
    public static function of(string $to, $data): self
    {
        return is_string($data) ? self::text($to, $data) : self::json($to, $data);
    }

    /**
     * @throws InvalidArgumentException for a bad client id or text that is not UTF-8
     */
    public static function text(string $to, string $text): self
    {
        ClientId::check($to);
        if (!Text::isUtf8($text)) {
            throw new InvalidArgumentException(sprintf('message to "%s": text is not valid UTF-8 (%s)', $to, Text::firstBadByte($text)));
        }

        return new self($to, self::TEXT, $text);
    }

    /**
     * @param mixed $value anything json_encode() accepts
     *
     * @throws InvalidArgumentException for a bad client id or a value json_encode() refuses
     */
    public static function json(string $to, $value): self
    {
        ClientId::check($to);
        if ($value instanceof self) {
            throw new InvalidArgumentException(sprintf('message to "%s": its data is a Message; pass Messages to sendMany() or Batch::addMessage()', $to));
        }
        try {
            $json = json_encode($value, self::JSON_FLAGS);
        } catch (\JsonException $e) {
            throw new InvalidArgumentException(sprintf('message to "%s": data cannot be encoded as JSON: %s', $to, $e->getMessage()), 0, $e);
        }

        return new self($to, self::JSON, $json);
    }

    /**
     * A message for every member of $group, each member's copy in its own
     * queue (but $except's, when given: the sender's own client, say). A
     * string is sent as text; anything else as JSON, as of() does.
     *
     * @param mixed $data
     *
     * @throws InvalidArgumentException for a bad group name or client id, or a payload that cannot be sent
     */
    public static function toGroup(string $group, $data, ?string $except = null): self
    {
        ClientId::check($group, 'group name');
        if ($except !== null) {
            ClientId::check($except, 'except');
        }
        try {
            $message = is_string($data) ? self::text($group, $data) : self::json($group, $data);
        } catch (InvalidArgumentException $e) {
            throw new InvalidArgumentException(str_replace('message to "', 'message to group "', $e->getMessage()), 0, $e);
        }
        $message->to = '';
        $message->group = $group;
        $message->except = $except ?? '';

        return $message;
    }

    /**
     * A group message whose data is sent as JSON whatever its type (a
     * string too), as json() does for one client.
     *
     * @param mixed $value anything json_encode() accepts
     *
     * @throws InvalidArgumentException for a bad group name or client id, or a value json_encode() refuses
     */
    public static function groupJson(string $group, $value, ?string $except = null): self
    {
        $message = self::toGroup($group, is_string($value) ? [] : $value, $except);
        if (is_string($value)) {
            $message->payload = json_encode($value, self::JSON_FLAGS);
        }

        return $message;
    }

    /** The recipient's client id; '' for a group message. */
    public function to(): string
    {
        return $this->to;
    }

    /** The group of a group message; '' for a message to one client. */
    public function group(): string
    {
        return $this->group;
    }

    /** The member a group message leaves out; '' when none. */
    public function except(): string
    {
        return $this->except;
    }

    public function isGroup(): bool
    {
        return $this->group !== '';
    }

    /** Message::TEXT or Message::JSON. */
    public function type(): string
    {
        return $this->type;
    }

    public function isJson(): bool
    {
        return $this->type === self::JSON;
    }

    /** The text, or the encoded JSON. */
    public function payload(): string
    {
        return $this->payload;
    }
}
