<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Internal\Text;

/**
 * One message for one client, checked and encoded when it is made: a text
 * (delivered to the browser as a JSON string, exactly, white space
 * included) or a JSON value. Immutable.
 *
 *     Message::of('alice', 'Hello');            // a string is text
 *     Message::of('bob', ['score' => 3]);       // anything else is JSON
 *     Message::json('carol', 'a JSON string');  // a string sent as JSON, by choice
 */
final class Message
{
    public const TEXT = 'text';
    public const JSON = 'json';

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

    /** The recipient's client id. */
    public function to(): string
    {
        return $this->to;
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
